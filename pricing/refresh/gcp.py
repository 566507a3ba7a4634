"""GCP live prices: Cloud Billing catalog SKUs (GPU, vCPU, RAM; on-demand and spot) x Compute machine types.

A GPU VM's hourly price = GPUs x GPU SKU + vCPUs x core SKU + GiB x RAM SKU of its machine family, in its
region (the Compute Engine pricing page's own formula for accelerator-optimized machines). Machine types and
their built-in GPUs come from the Compute API's aggregated machine-type listing, per zone.
"""
from __future__ import annotations

import re
from typing import Any

from pricing.errors import RefreshError
from pricing.offer import Dropped, Offer
from pricing.validate import ZoneRow, offers_from_rows

COMPUTE_SERVICE = "services/6F81-5844-456A"  # Compute Engine in the Cloud Billing catalog
# Compute accelerator type -> canonical GPU
ACCELERATOR_GPU = {
    "nvidia-tesla-a100": "A100", "nvidia-a100-80gb": "A100-80GB", "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100", "nvidia-h200-141gb": "H200", "nvidia-b200": "B200", "nvidia-l4": "L4",
    "nvidia-tesla-t4": "T4", "nvidia-tesla-v100": "V100",
}
# GPU SKU description (after 'Spot Preemptible ') -> Compute accelerator type
GPU_SKU = [
    (re.compile(r"^Nvidia (Tesla )?A100 80GB GPU", re.I), "nvidia-a100-80gb"),
    (re.compile(r"^Nvidia Tesla A100 GPU", re.I), "nvidia-tesla-a100"),
    (re.compile(r"^Nvidia H100 80GB Mega GPU", re.I), "nvidia-h100-mega-80gb"),
    (re.compile(r"^Nvidia H100 80GB GPU", re.I), "nvidia-h100-80gb"),
    (re.compile(r"^Nvidia H200 141GB GPU", re.I), "nvidia-h200-141gb"),
    (re.compile(r"^Nvidia B200 GPU", re.I), "nvidia-b200"),
    (re.compile(r"^Nvidia L4 GPU", re.I), "nvidia-l4"),
]
# machine-type prefix -> family name used in the core/RAM SKU descriptions ("A3 Instance Core running in ...")
MACHINE_FAMILY = [("a3-megagpu", "A3 Mega"), ("a3-ultragpu", "A3 Ultra"), ("a2-", "A2"), ("a3-", "A3"),
                  ("a4-", "A4"), ("g2-", "G2")]
_RESOURCE = re.compile(r"^(?P<family>.+?) Instance (?P<kind>Core|Ram) running in ", re.I)


def _money(rate) -> float:
    return float(rate.unit_price.units) + rate.unit_price.nanos / 1e9


def _sku_price(sku) -> float | None:
    if not sku.pricing_info:
        return None
    rates = sku.pricing_info[0].pricing_expression.tiered_rates
    return _money(rates[-1]) if rates else None


def parse_skus(skus) -> dict[tuple[str, str, bool], dict[str, float]]:
    """(kind, key, spot) -> {region: USD per unit-hour}; kind 'gpu' (key: accelerator type) or 'core'/'ram'
    (key: machine family)."""
    out: dict[tuple[str, str, bool], dict[str, float]] = {}
    for sku in skus:
        usage = sku.category.usage_type
        if usage not in ("OnDemand", "Preemptible"):
            continue  # commitments
        spot = usage == "Preemptible"
        desc = re.sub(r"^(Spot Preemptible|Preemptible) ", "", sku.description.strip())
        key = None
        if sku.category.resource_group == "GPU":
            for pattern, accel in GPU_SKU:
                if pattern.search(desc):
                    key = ("gpu", accel, spot)
                    break
        else:
            m = _RESOURCE.match(desc)
            if m:
                key = (m.group("kind").lower(), m.group("family").strip().upper(), spot)
        if key is None:
            continue
        price = _sku_price(sku)
        if price is None:
            raise RefreshError(f"SKU {sku.sku_id} ({sku.description}) has no price")
        for region in sku.service_regions:
            out.setdefault(key, {})[region] = price
    return out


def _family(machine_type: str) -> str | None:
    for prefix, fam in MACHINE_FAMILY:
        if machine_type.startswith(prefix):
            return fam.upper()
    return None


def fetch_gcp(regions: list[str] | None, *, as_of: str, timeout: float, progress, attempts: int = 5, billing_endpoint: str | None,
              compute_endpoint: str | None, project: str | None) -> tuple[list[Offer], list[Dropped], str]:
    from google.api_core import exceptions as gexc
    from google.api_core import retry as gretry
    from google.cloud import billing_v1, compute_v1

    if not project:
        from pricing.errors import PricingInputError

        raise PricingInputError("--project", "a GCP project is needed to list machine types",
                                "pass --project or set GOOGLE_CLOUD_PROJECT")
    source = "gcp cloud billing catalog + compute machine types (live)"
    creds = None
    kwargs: dict[str, Any] = {}
    if billing_endpoint:  # tests and mirrors: loopback endpoints need no real credentials
        from google.auth.credentials import AnonymousCredentials

        creds = AnonymousCredentials()
    retry = gretry.Retry(predicate=gretry.if_exception_type(gexc.TooManyRequests, gexc.ServiceUnavailable,
                                                            gexc.InternalServerError),
                         initial=0.2, maximum=5.0, multiplier=2.0, timeout=timeout * attempts)
    progress.total(2)
    progress.step("gcp: billing SKUs")
    billing = billing_v1.CloudCatalogClient(
        credentials=creds, transport="rest",
        client_options={"api_endpoint": billing_endpoint} if billing_endpoint else None, **kwargs)
    skus = parse_skus(billing.list_skus(parent=COMPUTE_SERVICE, retry=retry, timeout=timeout))
    progress.step("gcp: machine types")
    machines = compute_v1.MachineTypesClient(
        credentials=creds, transport="rest",
        client_options={"api_endpoint": compute_endpoint} if compute_endpoint else None)
    rows: list[ZoneRow] = []
    dropped: list[Dropped] = []
    for scope, scoped in machines.aggregated_list(project=project, retry=retry, timeout=timeout):
        zone = scope.split("/")[-1]
        region = zone.rsplit("-", 1)[0]
        if regions and region not in regions:
            continue
        for mt in scoped.machine_types:
            if not mt.accelerators:
                continue
            accel = mt.accelerators[0].guest_accelerator_type
            count = int(mt.accelerators[0].guest_accelerator_count)
            gpu = ACCELERATOR_GPU.get(accel)
            fam = _family(mt.name)
            if gpu is None or fam is None:
                dropped.append(Dropped("gcp", mt.name, region, zone, "row", f"no price mapping for {accel}"))
                continue
            vcpus, ram = float(mt.guest_cpus), mt.memory_mb / 1024

            def price(spot: bool) -> float | None:
                parts = [skus.get(("gpu", accel, spot), {}).get(region), skus.get(("core", fam, spot), {}).get(region),
                         skus.get(("ram", fam, spot), {}).get(region)]
                if any(p is None for p in parts):
                    return None
                return round(count * parts[0] + vcpus * parts[1] + ram * parts[2], 5)

            od, sp = price(False), price(True)
            if od is None:
                dropped.append(Dropped("gcp", mt.name, region, zone, "row",
                                       f"no GPU/core/RAM SKU prices for {fam} in {region}"))
                continue
            rows.append(ZoneRow("gcp", mt.name, region, zone, gpu, count, vcpus, ram, od, sp,
                                [f"price = {count} GPU + {vcpus:g} vCPU + {ram:g} GiB SKUs ({fam})"]))
    offers, bad = offers_from_rows(rows, source, as_of)
    dropped += bad
    return offers, dropped, source
