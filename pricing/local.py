"""Local hardware cost of ownership: effective $/GPU-hour, break-even utilisation, per-job cost.

Capital cost is annualised with the capital recovery factor (an annuity at the cost of capital over the lifetime),
net of the residual value's present value:  annual = (C - R / (1+r)^n) * r / (1 - (1+r)^-n), and (C - R)/n at r=0.
Energy is paid only while the job runs: (GPU power + host share) x PUE x price. Idle power is not counted
(machine assumed off or put to other use when idle) - a stated assumption. Maintenance is a % of capex per year.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pricing.errors import PricingInputError
from pricing.gpus import require_gpu

HOURS_PER_YEAR = 8760
HOURS_PER_MONTH = HOURS_PER_YEAR / 12
PRESETS_FILE = Path(__file__).resolve().parent / "data" / "local_profiles.yaml"
MAX_PROFILE_BYTES = 1_000_000  # a profile is ~1 kB
CURVE_POINTS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass
class LocalProfile:
    name: str
    gpu: str
    gpu_count: int
    purchase_price_usd: float  # the GPUs (or the GPU system)
    other_capex_usd: float
    lifetime_years: float
    residual_value_pct: float
    gpu_power_w: float  # per GPU, under training load
    host_power_w: float
    pue: float
    electricity_usd_per_kwh: float
    maintenance_pct_per_year: float
    cost_of_capital_pct: float
    already_owned: bool = False
    utilisation: float = 0.5
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def capex_usd(self) -> float:
        return self.purchase_price_usd + self.other_capex_usd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_UNITS = {
    "purchase_price_usd": "USD", "other_capex_usd": "USD", "lifetime_years": "years", "residual_value_pct": "%",
    "gpu_power_w": "W", "host_power_w": "W", "pue": "ratio", "electricity_usd_per_kwh": "USD/kWh",
    "maintenance_pct_per_year": "%/year", "cost_of_capital_pct": "%/year", "utilisation": "fraction",
    "gpu_count": "GPUs", "already_owned": "bool",
}
# field -> (min, max) accepted
_RANGES = {
    "gpu_count": (1, 64), "purchase_price_usd": (0, 1e8), "other_capex_usd": (0, 1e8), "lifetime_years": (0.25, 30),
    "residual_value_pct": (0, 100), "gpu_power_w": (0, 5000), "host_power_w": (0, 50000), "pue": (1.0, 3.0),
    "electricity_usd_per_kwh": (0, 5), "maintenance_pct_per_year": (0, 100), "cost_of_capital_pct": (0, 100),
    "utilisation": (0.001, 1.0),
}
_WORKLOAD = ("runs_per_month", "job_hours", "other_use_hours_per_month")


def utilisation_from_workload(runs_per_month: float, job_hours: float, other_use_hours_per_month: float = 0.0) -> float:
    """Busy fraction of the month, capped at 1 (730 h per month = 8760/12)."""
    return min(1.0, (runs_per_month * job_hours + other_use_hours_per_month) / HOURS_PER_MONTH)


def profile_from_dict(data: dict[str, Any], origin: str = "local_profile") -> LocalProfile:
    if not isinstance(data, dict):
        raise PricingInputError(origin, "a profile must be a mapping of fields", "see `pricing/data/local_profiles.yaml`")
    data = dict(data)
    known = {f for f in LocalProfile.__dataclass_fields__} | set(_WORKLOAD) | {"workload"}
    for k in data:
        if not isinstance(k, str):
            raise PricingInputError(f"{origin}", f"key {str(k)[:40]!r} is not a field name",
                                    f"known fields: {', '.join(sorted(known))}")
        if k not in known:
            import difflib

            close = difflib.get_close_matches(k, sorted(known), n=1)
            shown = k[:60] if k[:60].isprintable() else repr(k[:60])
            raise PricingInputError(f"{origin}.{shown}", "unknown field", f"did you mean {close[0]}?" if close else
                                    f"known fields: {', '.join(sorted(known))}")
    workload = data.pop("workload", None) or {}
    if not isinstance(workload, dict):
        raise PricingInputError(f"{origin}.workload", "must be a mapping", "e.g. workload: {runs_per_month: 4, job_hours: 10}")
    workload = dict(workload)
    for k in _WORKLOAD:
        if k in data:
            workload[k] = data.pop(k)
    if workload:
        for k, v in workload.items():
            if k not in _WORKLOAD:
                raise PricingInputError(f"{origin}.workload.{str(k)[:40]}", "unknown field", f"use {', '.join(_WORKLOAD)}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1e6:
                raise PricingInputError(f"{origin}.workload.{k}", f"{str(v)[:40]} is not a number in 0..1e6",
                                        "e.g. runs_per_month: 4, job_hours: 10")
        data["utilisation"] = max(_RANGES["utilisation"][0], utilisation_from_workload(
            float(workload.get("runs_per_month", 0)), float(workload.get("job_hours", 0)),
            float(workload.get("other_use_hours_per_month", 0))))
    required = [f for f, d in LocalProfile.__dataclass_fields__.items()
                if d.default is d.default_factory is __import__("dataclasses").MISSING]
    for f in required:
        if data.get(f) is None:
            raise PricingInputError(f"{origin}.{f}", "missing", f"add `{f}:` ({_UNITS.get(f, 'text')})")
    for f in ("gpu", "name"):
        if not isinstance(data[f], (str, int, float)) or isinstance(data[f], bool) or len(str(data[f])) > 200:
            raise PricingInputError(f"{origin}.{f}", "must be a short text", "e.g. gpu: RTX4090, name: my-box")
    data["gpu"] = require_gpu(str(data["gpu"]), f"{origin}.gpu")
    for f, (lo, hi) in _RANGES.items():
        if f not in data:
            continue
        v = data[f]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PricingInputError(f"{origin}.{f}", f"{str(v)[:40]!r} is not a number", f"give a number in {_UNITS[f]}")
        if not math.isfinite(v) or not lo <= v <= hi:
            raise PricingInputError(f"{origin}.{f}", f"{v} is out of range", f"use {lo}..{hi} {_UNITS[f]}")
    if data["gpu_count"] != int(data["gpu_count"]):
        raise PricingInputError(f"{origin}.gpu_count", "must be a whole number", "e.g. gpu_count: 4")
    data["gpu_count"] = int(data["gpu_count"])
    if "already_owned" in data and not isinstance(data["already_owned"], bool):
        raise PricingInputError(f"{origin}.already_owned", f"{data['already_owned']!r} is not true/false",
                                "use already_owned: true or false")
    data["name"] = str(data["name"])
    sources = data.get("sources") or {}
    if not isinstance(sources, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float))
                                                and len(str(v)) <= 1000 for k, v in sources.items()):
        raise PricingInputError(f"{origin}.sources", "must map field names to short source texts",
                                "e.g. sources: {purchase_price_usd: 'vendor quote, 2025-06'}")
    data["sources"] = {k: str(v) for k, v in sources.items()}
    return LocalProfile(**data)


@functools.lru_cache(maxsize=1)
def _presets_raw() -> tuple:
    import yaml

    # libyaml's C loader where present: the pure-Python parser costs ~60 ms of `gpuplan plan`'s budget
    return tuple(yaml.load(PRESETS_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def presets() -> dict[str, LocalProfile]:
    return {d["name"]: profile_from_dict(d, f"preset {d['name']}") for d in _presets_raw()}


def load_profile(name_or_path: str | Path, **overrides: Any) -> LocalProfile:
    """A bundled preset by name, or a YAML file (a mapping, or a preset name under `base:` plus changes)."""

    s = str(name_or_path)
    bundled = {d["name"]: d for d in _presets_raw()}
    if s in bundled:
        data = dict(bundled[s])
        origin = f"local profile {s}"
    else:
        from pricing.safe_read import read_yaml

        if len(s) > 4096 or "\x00" in s:
            raise PricingInputError("local_profile", "not a preset name or a file path",
                                    f"use one of {', '.join(bundled)} or a YAML file path")
        p = Path(s).expanduser()
        if not os.path.lexists(p):
            raise PricingInputError("local_profile", f"{s[:200]!r} is neither a preset nor a file",
                                    f"use one of {', '.join(bundled)} or a YAML file path")
        data = read_yaml(p, "local_profile", MAX_PROFILE_BYTES)
        origin = "local_profile"
        if isinstance(data, dict) and "base" in data:
            base = data.pop("base")
            if not isinstance(base, str) or base not in bundled:
                raise PricingInputError("local_profile.base", f"unknown preset {str(base)[:60]!r}",
                                        f"use one of {', '.join(bundled)}")
            data = {**bundled[base], "name": data.get("name", f"{base}-custom"), **data}
    if isinstance(data, dict):
        data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return profile_from_dict(data, origin)


# ----------------------------------------------------------------------------------------------
# Cost figures
# ----------------------------------------------------------------------------------------------
def annual_capital_usd(p: LocalProfile) -> float:
    c, n, r = p.capex_usd, p.lifetime_years, p.cost_of_capital_pct / 100
    residual = c * p.residual_value_pct / 100
    if r == 0:
        return (c - residual) / n
    return (c - residual / (1 + r) ** n) * r / (1 - (1 + r) ** -n)


def annual_fixed_usd(p: LocalProfile) -> float:
    """Capital + maintenance per year: paid whether or not the GPUs are busy."""
    return annual_capital_usd(p) + p.capex_usd * p.maintenance_pct_per_year / 100


def energy_usd_per_gpu_hour(p: LocalProfile) -> float:
    watts = p.gpu_power_w + p.host_power_w / p.gpu_count
    return watts / 1000 * p.pue * p.electricity_usd_per_kwh


def usd_per_gpu_hour(p: LocalProfile, utilisation: float | None = None) -> float:
    """Fully loaded $/GPU-hour at a utilisation (fraction of the year the GPUs are busy)."""
    u = p.utilisation if utilisation is None else utilisation
    if not 0 < u <= 1:
        raise PricingInputError("utilisation", f"{u} is out of range", "use a fraction in (0, 1]")
    return annual_fixed_usd(p) / (HOURS_PER_YEAR * u * p.gpu_count) + energy_usd_per_gpu_hour(p)


def break_even_utilisation(p: LocalProfile, cloud_usd_per_gpu_hour: float) -> float | None:
    """Utilisation above which owning is cheaper per GPU-hour than the cloud price (None: never; may exceed 1)."""
    margin = cloud_usd_per_gpu_hour - energy_usd_per_gpu_hour(p)
    if margin <= 0:
        return None
    return annual_fixed_usd(p) / (HOURS_PER_YEAR * p.gpu_count * margin)


@dataclass
class JobCost:
    hours: float
    gpus: int
    marginal_cost_usd: float  # electricity only if already owned, else the fully loaded cost
    loaded_cost_usd: float  # share of capital + maintenance at the profile's utilisation + electricity
    energy_cost_usd: float
    assumptions: list[dict[str, Any]]


def job_cost(p: LocalProfile, hours: float, gpus: int | None = None) -> JobCost:
    g = p.gpu_count if gpus is None else gpus
    if not 1 <= g <= p.gpu_count:
        raise PricingInputError("gpus", f"{g} GPUs requested but profile {p.name} has {p.gpu_count}",
                                f"use 1..{p.gpu_count}")
    # the host runs whatever share of the GPUs the job uses
    energy = (g * p.gpu_power_w + p.host_power_w) / 1000 * p.pue * p.electricity_usd_per_kwh * hours
    fixed_per_gpu_h = annual_fixed_usd(p) / (HOURS_PER_YEAR * p.utilisation * p.gpu_count)
    loaded = fixed_per_gpu_h * g * hours + energy
    marginal = energy if p.already_owned else loaded
    return JobCost(hours, g, marginal, loaded, energy, assumptions(p))


def assumptions(p: LocalProfile) -> list[dict[str, Any]]:
    out = [{"name": f"{p.name}: {k}", "value": getattr(p, k), "unit": _UNITS.get(k, ""),
            "source": p.sources.get(k, "user profile")}
           for k in ("gpu_count", "purchase_price_usd", "other_capex_usd", "lifetime_years", "residual_value_pct",
                     "cost_of_capital_pct", "maintenance_pct_per_year", "gpu_power_w", "host_power_w", "pue",
                     "electricity_usd_per_kwh", "utilisation", "already_owned")]
    out.append({"name": f"{p.name}: idle power", "value": 0, "unit": "W",
                "source": "assumption: machine off or used for other work when idle"})
    return out


def summary(p: LocalProfile, *, cloud_usd_per_gpu_hour: float | None = None, job_hours: float | None = None,
            gpus: int | None = None) -> dict[str, Any]:
    """The `local_profiles` entry of a plan document."""
    jc = job_cost(p, job_hours, gpus) if job_hours is not None else None
    return {
        "name": p.name, "gpu": p.gpu, "gpu_count": p.gpu_count,
        "usd_per_gpu_hour": usd_per_gpu_hour(p), "utilisation": p.utilisation,
        "energy_usd_per_gpu_hour": energy_usd_per_gpu_hour(p), "annual_fixed_usd": annual_fixed_usd(p),
        "already_owned": p.already_owned,
        "break_even_utilisation": (break_even_utilisation(p, cloud_usd_per_gpu_hour)
                                   if cloud_usd_per_gpu_hour is not None else None),
        "break_even_against_usd_per_gpu_hour": cloud_usd_per_gpu_hour,
        "marginal_cost_usd": jc.marginal_cost_usd if jc else None,
        "loaded_cost_usd": jc.loaded_cost_usd if jc else None,
        "assumptions": assumptions(p),
        "curve": [{"utilisation": u, "usd_per_gpu_hour": usd_per_gpu_hour(p, u)} for u in CURVE_POINTS],
    }


def detect_local_gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs on this machine via NVML (nvidia-ml-py); [] when there is no driver or library."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded: no GPU here
        return []
    from pricing.gpus import canonical_gpu

    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else name
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30
            out.append({"index": i, "name": name, "gpu": canonical_gpu(name), "memory_gib": round(mem, 1)})
    finally:
        pynvml.nvmlShutdown()
    return out
