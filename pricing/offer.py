"""The one table schema of the price layer: an `Offer` is one instance type in one region of one provider."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
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


# Bounds of a stored offer (cache, snapshot): a row outside them is invalid and skipped, never priced.
MAX_GPUS_PER_OFFER = 16  # largest single VM: GCP a2-megagpu-16g (16x A100)
MAX_USD_PER_HOUR = 10_000.0  # ~100x the priciest GPU instance (AWS p5en.48xlarge ~$85/h, price list 2025)
MAX_TEXT = 300  # instance types, regions, zones are < 64 characters in every catalog


def _finite(value: Any, name: str, low: float, high: float, *, low_open: bool = False) -> float | None:
    if value is None:
        return None
    t = type(value)
    if t is not float and t is not int:  # bool is not int here (type(), not isinstance())
        raise ValueError(f"{name} is not a number ({t.__name__})")
    v = float(value)
    if not (low < v <= high if low_open else low <= v <= high):  # False for nan; inf is over high
        raise ValueError(f"{name} {v:g} is out of range")
    return v


def _text(value: Any, name: str, *, optional: bool = False, limit: int = MAX_TEXT) -> str | None:
    if value is None and optional:
        return None
    if type(value) is not str or len(value) > limit or "\x00" in value:
        raise ValueError(f"{name} is not a text of at most {limit} characters")
    return value


@functools.lru_cache(maxsize=256)
def _gpu(name: str) -> str | None:
    from pricing.gpus import canonical_gpu

    return canonical_gpu(name)


@functools.lru_cache(maxsize=256)
def _is_date(text: str) -> bool:
    try:
        _dt.date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def checked_offer(data: dict[str, Any]) -> Offer:
    """An Offer from a stored row's fields, every field type- and range-checked; ValueError names the problem.

    Cached and downloaded price files are validated as strictly as user input: a row that fails is skipped
    (with a warning) rather than priced or crashing the command that reads it.
    """
    provider = data.get("provider")
    if type(provider) is not str or provider not in PROVIDERS:
        raise ValueError(f"provider {str(provider)[:20]!r} is unknown")
    gpu_name = _text(data.get("gpu"), "gpu", limit=64)
    gpu = _gpu(gpu_name)
    if gpu is None:
        raise ValueError(f"gpu {gpu_name!r} is unknown")
    count = data.get("gpu_count")
    if type(count) is float and count.is_integer():
        count = int(count)
    if type(count) is not int or not 1 <= count <= MAX_GPUS_PER_OFFER:
        raise ValueError(f"gpu_count {str(count)[:20]} is not a whole number in 1..{MAX_GPUS_PER_OFFER}")
    as_of = _text(data.get("as_of"), "as_of", limit=40)
    if not _is_date(as_of):
        raise ValueError(f"as_of {as_of[:20]!r} is not a date")
    notes = data.get("notes")
    if notes is None:
        notes = []
    if type(notes) is not list or len(notes) > 50 or not all(type(n) is str and len(n) <= 1000 for n in notes):
        raise ValueError("notes is not a list of short texts")
    price = _finite(data.get("usd_per_hour"), "usd_per_hour", 0.0, MAX_USD_PER_HOUR, low_open=True)
    spot = _finite(data.get("spot_usd_per_hour"), "spot_usd_per_hour", 0.0, MAX_USD_PER_HOUR, low_open=True)
    if price is None and spot is None:
        raise ValueError("neither an on-demand nor a spot price")
    return Offer(provider, _text(data.get("instance_type"), "instance_type"), _text(data.get("region"), "region"),
                 _text(data.get("zone"), "zone", optional=True), gpu, count,
                 _finite(data.get("gpu_memory_gib"), "gpu_memory_gib", 0.0, 10_000.0),
                 _finite(data.get("vcpus"), "vcpus", 0.0, 100_000.0),
                 _finite(data.get("ram_gib"), "ram_gib", 0.0, 1_000_000.0), price, spot,
                 _text(data.get("source"), "source", limit=1000), as_of, list(notes))


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
