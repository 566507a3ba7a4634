"""The one table schema of the price layer: an `Offer` is one instance type in one region of one provider."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("aws", "gcp", "azure", "lambda", "runpod", "local")


@dataclass
class Offer:
    provider: str
    instance_type: str
    region: str
    zone: str | None  # cheapest spot zone (None: no spot, or zones not known)
    gpu: str  # canonical name (pricing.gpus)
    gpu_count: int
    gpu_memory_gib: float | None  # per GPU
    vcpus: float | None
    ram_gib: float | None
    usd_per_hour: float | None  # on-demand, whole instance; None if not offered
    spot_usd_per_hour: float | None  # cheapest zone; None if no spot
    source: str
    as_of: str  # ISO date
    notes: list[str] = field(default_factory=list)  # validation flags kept on the row

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.instance_type, self.region)

    def usd_per_gpu_hour(self, spot: bool = False) -> float | None:
        price = self.spot_usd_per_hour if spot else self.usd_per_hour
        return None if price is None else price / self.gpu_count

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COLUMNS = tuple(f.name for f in dataclasses.fields(Offer))


def offer_from_row(row: list[Any] | dict[str, Any]) -> Offer:
    """From a snapshot row (list in COLUMNS order) or dict."""
    if isinstance(row, dict):
        data = {k: row.get(k) for k in COLUMNS}
    else:
        data = dict(zip(COLUMNS, row))
    data["notes"] = list(data.get("notes") or [])
    return Offer(**data)


def offer_to_row(offer: Offer) -> list[Any]:
    return [getattr(offer, c) for c in COLUMNS]


@dataclass
class Dropped:
    """A catalog row (or price) that validation removed, and why."""

    provider: str
    instance_type: str
    region: str
    zone: str | None
    what: str  # "row" | "spot" | "on-demand"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
