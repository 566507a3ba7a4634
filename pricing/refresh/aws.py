"""AWS live prices: Price List `get_products` (on-demand) + EC2 `describe_spot_price_history` (spot per zone)."""
from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from pricing.errors import RefreshError
from pricing.offer import Dropped, Offer
from pricing.validate import ZoneRow, offers_from_rows

# EC2 GPU instance family -> canonical GPU (AWS EC2 accelerated computing instance docs)
FAMILY_GPU = {
    "p3": "V100", "p3dn": "V100-32GB", "p4d": "A100", "p4de": "A100-80GB", "p5": "H100", "p5e": "H200",
    "p5en": "H200", "p6-b200": "B200", "p6-b300": "B300", "g4dn": "T4", "g5": "A10G", "g6": "L4", "g6e": "L40S",
    "g6f": "L4", "gr6": "L4",
}
PRICE_FILTERS = {  # on-demand Linux, shared tenancy, no pre-installed software, used capacity
    "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
}
SPOT_PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


def _client(service: str, region: str, endpoint: str | None, timeout: float, attempts: int = 5):
    import boto3
    from botocore.config import Config

    cfg = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=timeout, read_timeout=timeout)
    kwargs: dict[str, Any] = {"region_name": region, "config": cfg}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    return boto3.client(service, **kwargs)


def parse_price_item(text: str) -> dict[str, Any] | None:
    """One PriceList JSON string -> {instance_type, region, vcpus, ram_gib, gpu_count, usd_per_hour} (or None)."""
    try:
        item = json.loads(text) if isinstance(text, str) else text
        attrs = item["product"]["attributes"]
        itype = attrs["instanceType"]
        prices = []
        for term in item["terms"]["OnDemand"].values():
            for dim in term["priceDimensions"].values():
                prices.append(float(dim["pricePerUnit"]["USD"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RefreshError(f"malformed Price List item ({type(exc).__name__}: {exc})") from None
    family = itype.split(".")[0]
    if family not in FAMILY_GPU:
        return None
    positive = [p for p in prices if p > 0]
    mem = re.match(r"([\d.,]+)", str(attrs.get("memory", "")))
    return {"instance_type": itype, "region": attrs.get("regionCode"), "family": family,
            "vcpus": float(attrs["vcpu"]) if attrs.get("vcpu") else None,
            "ram_gib": float(mem.group(1).replace(",", "")) if mem else None,
            "gpu_count": int(float(attrs["gpu"])) if attrs.get("gpu") not in (None, "", "NA") else None,
            "usd_per_hour": min(positive) if positive else None}


def fetch_on_demand(client, region: str) -> list[dict[str, Any]]:
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in PRICE_FILTERS.items()]
    filters.append({"Type": "TERM_MATCH", "Field": "regionCode", "Value": region})
    filters.append({"Type": "TERM_MATCH", "Field": "instanceFamily", "Value": "GPU instance"})
    out = []
    for page in client.get_paginator("get_products").paginate(ServiceCode="AmazonEC2", Filters=filters,
                                                               FormatVersion="aws_v1"):
        if "PriceList" not in page:
            raise RefreshError("malformed GetProducts answer: no PriceList")
        for text in page["PriceList"]:
            rec = parse_price_item(text)
            if rec is not None:
                out.append(rec)
    return out


def fetch_spot(client, instance_types: list[str]) -> dict[tuple[str, str], float]:
    """(instance type, availability zone) -> latest spot price."""
    out: dict[tuple[str, str], float] = {}
    now = _dt.datetime.now(_dt.timezone.utc)
    for page in client.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=instance_types, ProductDescriptions=["Linux/UNIX"], StartTime=now):
        for rec in page.get("SpotPriceHistory", []):
            if rec.get("ProductDescription") not in SPOT_PRODUCTS:
                continue
            try:
                key, price = (rec["InstanceType"], rec["AvailabilityZone"]), float(rec["SpotPrice"])
            except (KeyError, ValueError) as exc:
                raise RefreshError(f"malformed spot price record ({exc})") from None
            out[key] = min(price, out.get(key, price))
    return out


def fetch_aws(regions: list[str], *, as_of: str, timeout: float, progress, attempts: int = 5, pricing_endpoint: str | None,
              ec2_endpoint: str | None) -> tuple[list[Offer], list[Dropped], str]:
    source = "aws price list api + ec2 spot price history (live)"
    pricing = _client("pricing", "us-east-1", pricing_endpoint, timeout, attempts)  # the Price List API lives in us-east-1
    progress.total(2 * len(regions))
    rows: list[ZoneRow] = []
    for region in regions:
        progress.step(f"aws {region}: on-demand")
        od = {r["instance_type"]: r for r in fetch_on_demand(pricing, region)}
        progress.step(f"aws {region}: spot")
        spot = fetch_spot(_client("ec2", region, ec2_endpoint, timeout, attempts), sorted(od)) if od else {}
        for itype, r in sorted(od.items()):
            gpu = FAMILY_GPU[r["family"]]
            count = r["gpu_count"] or 0
            zones = sorted((z, p) for (t, z), p in spot.items() if t == itype)
            for zone, price in zones or [(None, None)]:
                rows.append(ZoneRow("aws", itype, region, zone, gpu, count, r["vcpus"], r["ram_gib"],
                                    r["usd_per_hour"], price))
    offers, dropped = offers_from_rows(rows, source, as_of)
    return offers, dropped, source
