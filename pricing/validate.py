"""Validation every price source goes through: catalogs are evidence, not truth.

Works on zone-level rows (before the per-region aggregation) so a bad zone cannot hide behind a good one.
Rules (each dropped value is reported with its reason):
- a row with no on-demand price is dropped (AWS p5e.48xlarge: capacity blocks only; a spot-only price cannot be
  checked against anything);
- spot > on-demand, spot == on-demand (a placeholder, e.g. RunPod and Azure H100 in the shared catalogs) and spot
  below 2 % of on-demand (placeholders such as 0.00001; real discounts stop near 90 %) drop the spot price only;
- GPU counts are corrected where the catalog is known wrong (Azure ND96isr_H100_v5 lists 12 GPUs; Microsoft's
  ND H100 v5 page: 8x H100) and rows with impossible counts (not 1..16) are dropped;
- duplicate rows (same provider, instance type, region, zone) keep the first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pricing.gpus import gpu_memory_gib
from pricing.offer import Dropped, Offer

MIN_SPOT_FRACTION = 0.02  # spot below 2 % of on-demand is a placeholder (AWS spot floors are ~10 % of on-demand)
MAX_GPUS_PER_INSTANCE = 16  # largest single VMs: GCP a2-megagpu-16g (16x A100)
# (provider, instance type) -> true GPU count, with the source of the correction
KNOWN_GPU_COUNTS: dict[tuple[str, str], tuple[int, str]] = {
    ("azure", "Standard_ND96isr_H100_v5"): (8, "Microsoft ND H100 v5 series docs: 8x H100 80GB"),
}
SPREAD_FLAG_RATIO = 2.0  # per-GPU on-demand max/min across regions above this is flagged (GCP H100: ~3x)


@dataclass
class ZoneRow:
    provider: str
    instance_type: str
    region: str
    zone: str | None
    gpu: str
    gpu_count: int
    vcpus: float | None
    ram_gib: float | None
    price: float | None
    spot: float | None
    notes: list[str] = field(default_factory=list)


def validate_rows(rows: list[ZoneRow]) -> tuple[list[ZoneRow], list[Dropped]]:
    kept: list[ZoneRow] = []
    dropped: list[Dropped] = []
    seen: set[tuple[str, str, str, str | None]] = set()

    def drop(r: ZoneRow, what: str, reason: str) -> None:
        dropped.append(Dropped(r.provider, r.instance_type, r.region, r.zone, what, reason))

    for r in rows:
        key = (r.provider, r.instance_type, r.region, r.zone)
        if key in seen:
            drop(r, "row", "duplicate row (same provider, instance type, region, zone); kept the first")
            continue
        seen.add(key)
        known = KNOWN_GPU_COUNTS.get((r.provider, r.instance_type))
        if known and r.gpu_count != known[0]:
            drop(r, "gpu_count", f"catalog says {r.gpu_count} GPUs, corrected to {known[0]} ({known[1]})")
            r.notes.append(f"GPU count corrected from {r.gpu_count} to {known[0]}")
            r.gpu_count = known[0]
        if not 1 <= r.gpu_count <= MAX_GPUS_PER_INSTANCE:
            drop(r, "row", f"impossible GPU count {r.gpu_count}")
            continue
        if r.price is None or r.price <= 0:
            drop(r, "row", "no on-demand price (not offered, or capacity blocks only)")
            continue
        if r.spot is not None:
            if r.spot <= 0:
                drop(r, "spot", f"non-positive spot price {r.spot}")
                r.spot = None
            elif r.spot > r.price:
                drop(r, "spot", f"spot {r.spot:g} > on-demand {r.price:g}")
                r.spot = None
            elif r.spot == r.price:
                drop(r, "spot", f"spot equals on-demand ({r.price:g}): a placeholder, not a spot market")
                r.spot = None
            elif r.spot < MIN_SPOT_FRACTION * r.price:
                drop(r, "spot", f"spot {r.spot:g} is under {MIN_SPOT_FRACTION:.0%} of on-demand {r.price:g}: a placeholder")
                r.spot = None
        kept.append(r)
    return kept, dropped


def aggregate(rows: list[ZoneRow]) -> dict[tuple[str, str, str], dict]:
    """One entry per provider x instance type x region: cheapest on-demand, cheapest spot and its zone."""
    out: dict[tuple[str, str, str], dict] = {}
    for r in rows:
        k = (r.provider, r.instance_type, r.region)
        a = out.get(k)
        if a is None:
            out[k] = a = {"row": r, "price": r.price, "spot": None, "zone": None, "prices": set(), "notes": []}
        a["prices"].add(r.price)
        if r.price is not None and (a["price"] is None or r.price < a["price"]):
            a["price"] = r.price
        if r.spot is not None and (a["spot"] is None or r.spot < a["spot"]):
            a["spot"], a["zone"] = r.spot, r.zone
        for n in r.notes:
            if n not in a["notes"]:
                a["notes"].append(n)
    for a in out.values():
        if len(a["prices"]) > 1:
            a["notes"].append(
                f"on-demand differs between zones ({min(a['prices']):g}..{max(a['prices']):g}); cheapest shown")
    return out


def offers_from_rows(rows: list[ZoneRow], source: str, as_of: str) -> tuple[list[Offer], list[Dropped]]:
    """Every source's last step: validate per-zone rows, then one offer per provider x instance type x region
    (cheapest on-demand, cheapest spot and its zone)."""
    kept, dropped = validate_rows(rows)
    offers = []
    for (prov, itype, region), a in sorted(aggregate(kept).items()):
        r: ZoneRow = a["row"]
        memory = gpu_memory_gib(r.gpu)
        offers.append(Offer(prov, itype, region, a["zone"], r.gpu, r.gpu_count,
                            float(memory) if memory is not None else None, r.vcpus, r.ram_gib, a["price"], a["spot"],
                            source, as_of, list(a["notes"])))
    return offers, dropped


def spread_warnings(offers: list) -> list[str]:
    """Flag implausible regional spread of on-demand prices of one instance type (same provider)."""
    groups: dict[tuple[str, str], list] = {}
    for o in offers:
        if o.usd_per_hour is not None:
            groups.setdefault((o.provider, o.instance_type), []).append(o)
    warnings = []
    for (provider, itype), group in sorted(groups.items()):
        gpu, count = group[0].gpu, group[0].gpu_count
        per_gpu = sorted(o.usd_per_hour / o.gpu_count for o in group)
        lo, hi = per_gpu[0], per_gpu[-1]
        if lo > 0 and hi / lo > SPREAD_FLAG_RATIO:
            for o in group:
                if o.usd_per_hour / o.gpu_count > SPREAD_FLAG_RATIO * lo * 0.99:
                    o.notes.append(f"on-demand per GPU {o.usd_per_hour / o.gpu_count / lo:.1f}x the cheapest "
                                   f"{provider} region for {itype}: implausible spread, check before relying on it")
            warnings.append(f"{provider} {itype} ({count}x {gpu}): on-demand per GPU ranges {lo:.2f}..{hi:.2f} USD/h across "
                            f"regions ({hi / lo:.1f}x); flagged rows may be catalog errors")
    return warnings
