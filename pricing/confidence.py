"""How far to trust each catalog price: "normal", "outlier" or "stale".

Rule (chosen from the bundled SkyPilot catalogs of 2026-11-28, 798 GPU offers):

* outlier -- a price below OUTLIER_RATIO (one half) of its peers, where the peers are
  (a) the same instance type's price of the same kind (spot or on-demand) in the provider's other regions,
      when there are at least MIN_PEERS of them, or
  (b) for spot, the spot/on-demand discount of the provider's other offers of the same GPU type: a spot price
      whose discount is more than twice as deep as the median discount of its peers.
  In those catalogs the ratio of a spot price to its other regions' median has a gap between 0.48 and 0.53:
  15 of 373 spot prices sit at 0.31-0.48 (AWS p5.48xlarge in ap-southeast-3: $0.95/GPU-h against a $2.50
  median, one tenth of its on-demand price), the body starts at 0.6. One half sits in that gap. A spot price
  that far below its peers usually means no capacity behind it or a stale quote.
* stale -- the provider's price source is older than the staleness limit (pricing.catalog.STALE_AFTER_DAYS), or
  comes from an older SkyPilot catalog format than the one SkyPilot 0.14 reads (Azure's v6 catalog in the
  bundled snapshot: its prices may predate the snapshot date).
* normal -- everything else.

Standard library only: this runs on every `gpuplan plan`.
"""
from __future__ import annotations

import bisect
from typing import Any, Iterable, Mapping

from pricing.offer import Offer

FLAGS = ("normal", "outlier", "stale")
OUTLIER_RATIO = 0.5  # below half of the peers' median (see the module docstring for the data behind it)
MIN_PEERS = 2  # other regions (or offers) needed before a price can be called an outlier


def _median_without(values: list[float], own: float) -> float | None:
    """Median of sorted `values` with one occurrence of `own` left out; None below MIN_PEERS others."""
    if len(values) - 1 < MIN_PEERS:
        return None
    i = bisect.bisect_left(values, own)
    s = values[:i] + values[i + 1:]
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def price_flags(offers: Iterable[Offer], sources: Mapping[str, Mapping[str, Any]]
                ) -> dict[tuple[str, str, str], dict[str, tuple[str, str]]]:
    """{offer.key: {"on-demand": (flag, why), "spot": (flag, why)}} for every price an offer has.

    Each offer is one instance type in one region, so "the other regions" are the group less this offer."""
    offers = list(offers)
    by_type: dict[tuple[str, str, bool], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    for o in offers:
        for spot, price in ((False, o.usd_per_hour), (True, o.spot_usd_per_hour)):
            if price is not None and price > 0:
                by_type.setdefault((o.provider, o.instance_type, spot), []).append(price / o.gpu_count)
        if o.spot_usd_per_hour and o.usd_per_hour:
            ratios.setdefault((o.provider, o.gpu), []).append(o.spot_usd_per_hour / o.usd_per_hour)
    for group in (by_type, ratios):
        for values in group.values():
            values.sort()

    out: dict[tuple[str, str, str], dict[str, tuple[str, str]]] = {}
    for o in offers:
        src = sources.get(o.provider, {})
        stale_why = None
        if src.get("stale"):
            stale_why = f"{o.provider} prices are {src.get('age_days')} days old"
        elif src.get("note"):
            stale_why = f"{o.provider}: {src['note']}"
        flags: dict[str, tuple[str, str]] = {}
        for spot, price in ((False, o.usd_per_hour), (True, o.spot_usd_per_hour)):
            kind = "spot" if spot else "on-demand"
            if price is None or price <= 0:
                continue
            if stale_why:
                flags[kind] = ("stale", stale_why)
                continue
            per_gpu = price / o.gpu_count
            peers = _median_without(by_type[(o.provider, o.instance_type, spot)], per_gpu)
            if peers is not None and per_gpu < OUTLIER_RATIO * peers:
                flags[kind] = ("outlier", f"{kind} ${per_gpu:.2f}/GPU-h is {per_gpu / peers:.0%} of the same "
                                          f"instance's median ${peers:.2f} in other regions")
                continue
            if spot and o.usd_per_hour:
                ratio = price / o.usd_per_hour
                typical = _median_without(ratios[(o.provider, o.gpu)], ratio)
                if typical is not None and ratio < OUTLIER_RATIO * typical:
                    flags[kind] = ("outlier", f"spot is {ratio:.0%} of on-demand where {o.provider}'s other {o.gpu} "
                                              f"spot prices are {typical:.0%}")
                    continue
            flags[kind] = ("normal", "")
        out[o.key] = flags
    return out


def assumptions() -> list[dict[str, Any]]:
    return [{"name": "outlier price: below this fraction of its peers' median", "value": OUTLIER_RATIO,
             "unit": "fraction", "category": "finance",
             "source": "gap in the spot/peer price ratios of the SkyPilot catalogs of 2026-11-28 (15 of 373 spot "
                       "prices at 0.31-0.48, the rest above 0.53)"},
            {"name": "outlier price: peers needed", "value": MIN_PEERS, "unit": "other regions or offers",
             "category": "finance", "source": "rule of thumb: a median needs at least two peers"}]
