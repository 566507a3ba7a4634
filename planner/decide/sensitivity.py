"""How the recommended option's cost moves when the plan's main assumptions move: the `sensitivity` rows
of the plan document (and the report's tornado chart).

Cheap arithmetic on the recommended option's hours and $/h; nothing is re-planned. Each row gives an
assumption's base value, a low and a high value, and the job's ALL-IN cost and time to result at each, as the
plan defines them (planner.decide.compare: time to result = training + start-up hours; cost with start-up = $/h x the
billed hours of that time, the provider's billing granularity and minimum read from the plan's assumptions).
``cost_low_usd`` / ``time_low_hours`` are the cost and time with the assumption at ``low`` (which may be the
higher cost: a lower throughput means more hours); ``base_cost_usd`` / ``base_time_hours`` the row's base
(equal to the option's cost_with_startup_usd / time_to_result_hours). A plan without start-up figures (v0.1)
gives the training cost alone, as it did.

Rows:
- throughput estimate: +/- the estimator's measured median absolute error (``doc["accuracy"]``), on the
  tokens/s the hours were computed from; hours scale as 1/throughput. Every option.
- spot preemption rate: for a spot option, pricing.spot's overhead model (and the start-up's restart share,
  proportional to the expected preemptions) at no preemptions and at 4x the
  assumed rate (about one per 5 h at the default 0.05/h; large GPU spot pools get reclaimed that often
  in bad weeks -- an assumption, stated as such).
- price: the option's $/h at the ends of PRICE_RANGES (spot prices move more than list prices). Every option.
- dataset size: half and double the tokens (training hours scale with tokens; start-up does not). Cloud options.
- start-up time: half and double the plan's `startup_hours`, where the plan carries it.
- utilisation, electricity price, hardware price, lifetime: for a local option (and, for a cloud recommendation,
  for the cheapest local option that fits, marked ``alternative``), the profile's cost per
  GPU-hour recomputed by pricing.local at each end of the range (see LOCAL_RANGES).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

# Ranges for a local profile's assumptions, as multipliers of the base value (utilisation: absolute
# fractions, clipped to (0, 1]). Chosen to span what a finance reviewer would argue about:
# utilisation 0.5x..1.5x of the plan's figure; electricity 0.5x..2x (EU/US retail tariffs 2024 span
# roughly 0.10-0.40 USD/kWh, Eurostat / EIA); hardware price 0.8x..1.3x (street price versus list, GPU
# shortages); lifetime 0.6x..1.33x (3 vs 5 years around a 4-year depreciation schedule).
LOCAL_RANGES: dict[str, tuple[float, float]] = {
    "utilisation": (0.5, 1.5),
    "electricity price": (0.5, 2.0),
    "hardware price": (0.8, 1.3),
    "lifetime": (0.6, 4 / 3),
}
SPOT_RATE_HIGH_MULTIPLIER = 4.0
# $/h multipliers. On-demand: list prices change rarely (AWS/GCP list-price changes 2023-2025 were a few per
# cent to ~-45% on H100 once); 0.9..1.15 covers a change within a quarter. Spot: AWS spot price history for
# p4d/p5 and GCP spot A100/H100 moved roughly -30%..+50% within 2024 (an assumption read off the published
# histories, stated as such).
PRICE_RANGES: dict[str, tuple[float, float]] = {"on-demand": (0.9, 1.15), "spot": (0.7, 1.5), "local": (1.0, 1.0)}
# Dataset size: half and double, the size changes a reviewer asks about (an assumption, not a measurement).
DATASET_RANGE = (0.5, 2.0)
# Start-up time (provisioning, image pull, model download): half and double the plan's figure.
STARTUP_RANGE = (0.5, 2.0)
# Used only when the plan document carries no measured figure.
DEFAULT_THROUGHPUT_ERROR_PCT = 25.0

# Assumption rows of pricing.spot.SpotAssumptions.assumptions(), name -> field.
_SPOT_FIELDS = {
    "spot preemption rate": "preemptions_per_hour",
    "checkpoint interval": "checkpoint_interval_hours",
    "restart time after preemption": "restart_hours",
    "checkpoint write cost": "checkpoint_cost_hours",
}


def option_label(option: dict[str, Any]) -> str:
    kind = "local" if option.get("target") == "local" else ("spot" if option.get("spot") else "on-demand")
    where = f" {option['region']}" if option.get("region") else ""
    return f"{option.get('provider')} {option.get('instance_type')}{where} {option.get('gpus')}x{option.get('gpu')} {kind}"


def _row(assumption: str, base: Any, low: Any, high: Any, unit: str, cost_low: float, cost_high: float,
         option: str) -> dict[str, Any]:
    return {"assumption": assumption, "base": base, "low": low, "high": high, "unit": unit,
            "cost_low_usd": cost_low, "cost_high_usd": cost_high, "option": option}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def billing_terms(doc: dict[str, Any], provider: str) -> tuple[float, float]:
    """(granularity s, minimum s) of a provider's billing as the plan states them in its assumptions
    ("billing, <provider>: granularity" / "billing, <provider>: minimum per run"); (0, 0) where it does not."""
    out = []
    for what in ("granularity", "minimum per run"):
        a = next((a for a in doc.get("assumptions") or [] if a.get("name") == f"billing, {provider}: {what}"), {})
        out.append(float(a["value"]) if _num(a.get("value")) else 0.0)
    return out[0], out[1]


def billed(hours: float, terms: tuple[float, float]) -> float:
    """Hours on the bill, as pricing.startup.billed_hours bills them: at least the minimum, rounded up to the
    granularity."""
    step, minimum = terms
    seconds = max(hours * 3600, minimum)
    if step > 1:
        seconds = math.ceil(seconds / step - 1e-9) * step
    return seconds / 3600


class AllIn:
    """The recommended option's all-in figures the way the plan computes them (planner.decide.compare): time to result
    = training hours + start-up hours; cost with start-up = $/h x billed hours of that time (a local machine is
    not billed: its hours as they are). A plan without start-up figures (v0.1) gets start-up 0 and no billing
    terms, so every row is then the training cost alone, as before."""

    def __init__(self, rec: dict[str, Any], doc: dict[str, Any]) -> None:
        self.rec = rec
        self.has_startup = _num(rec.get("startup_hours"))
        self.startup = float(rec["startup_hours"]) if self.has_startup else 0.0
        local = rec.get("target") == "local"
        self.terms = (0.0, 0.0) if local or not self.has_startup else billing_terms(doc, str(rec.get("provider")))

    def time(self, train_hours: float, startup_hours: float | None = None) -> float:
        return train_hours + (self.startup if startup_hours is None else startup_hours)

    def cost(self, usd_h: float, train_hours: float, startup_hours: float | None = None) -> float:
        return usd_h * billed(self.time(train_hours, startup_hours), self.terms)

    def base_cost(self) -> float:
        return self.cost(self.rec["usd_per_hour"], self.rec["hours"])


def _timed(row: dict[str, Any], base_cost: float, base_time: float, t_low: float, t_high: float) -> dict[str, Any]:
    row.update(base_cost_usd=base_cost, base_time_hours=base_time, time_low_hours=t_low, time_high_hours=t_high)
    return row


def throughput_row(rec: dict[str, Any], error_pct: float, doc: dict[str, Any] | None = None) -> dict[str, Any] | None:
    hours, usd_h, tps = rec.get("hours"), rec.get("usd_per_hour"), rec.get("tokens_per_s")
    if not hours or usd_h is None or not tps or not 0 < error_pct < 100:
        return None
    a = AllIn(rec, doc or {})
    e = error_pct / 100
    low_tps, high_tps = tps * (1 - e), tps * (1 + e)
    h_low, h_high = hours * tps / low_tps, hours * tps / high_tps
    row = _row(f"throughput estimate (±{error_pct:.0f}%)", tps, low_tps, high_tps, "tokens/s",
               a.cost(usd_h, h_low), a.cost(usd_h, h_high), option_label(rec))
    return _timed(row, a.base_cost(), a.time(hours), a.time(h_low), a.time(h_high))


def price_row(rec: dict[str, Any], doc: dict[str, Any] | None = None) -> dict[str, Any] | None:
    hours, usd_h = rec.get("hours"), rec.get("usd_per_hour")
    kind = "local" if rec.get("target") == "local" else ("spot" if rec.get("spot") else "on-demand")
    lo_m, hi_m = PRICE_RANGES[kind]
    if not hours or not usd_h or lo_m == hi_m:
        return None
    a = AllIn(rec, doc or {})
    row = _row(f"{kind} price", usd_h, usd_h * lo_m, usd_h * hi_m, "USD/h", a.cost(usd_h * lo_m, hours),
               a.cost(usd_h * hi_m, hours), option_label(rec))
    return _timed(row, a.base_cost(), a.time(hours), a.time(hours), a.time(hours))


def dataset_row(rec: dict[str, Any], doc: dict[str, Any] | None = None) -> dict[str, Any] | None:
    hours, usd_h = rec.get("hours"), rec.get("usd_per_hour")
    if not hours or usd_h is None or rec.get("target") == "local":
        return None
    a = AllIn(rec, doc or {})
    lo_m, hi_m = DATASET_RANGE
    row = _row("dataset size", 1.0, lo_m, hi_m, "x the job's tokens", a.cost(usd_h, hours * lo_m),
               a.cost(usd_h, hours * hi_m), option_label(rec))
    return _timed(row, a.base_cost(), a.time(hours), a.time(hours * lo_m), a.time(hours * hi_m))


def startup_row(rec: dict[str, Any], doc: dict[str, Any] | None = None) -> dict[str, Any] | None:
    hours, usd_h, start = rec.get("hours"), rec.get("usd_per_hour"), rec.get("startup_hours")
    if not hours or usd_h is None or not _num(start) or start <= 0:
        return None
    a = AllIn(rec, doc or {})
    lo_m, hi_m = STARTUP_RANGE
    row = _row("start-up time", start, start * lo_m, start * hi_m, "h", a.cost(usd_h, hours, start * lo_m),
               a.cost(usd_h, hours, start * hi_m), option_label(rec))
    return _timed(row, a.base_cost(), a.time(hours), a.time(hours, start * lo_m), a.time(hours, start * hi_m))


def spot_assumptions_from(doc: dict[str, Any]):  # -> pricing.spot.SpotAssumptions
    """The SpotAssumptions the plan used, read back from its `assumptions` rows (defaults for any missing).

    The document rounds some values to 4 decimals (restart 1/6 h -> 0.1667); a value equal to the rounded
    default is taken as the exact default, so the costs here match the plan's own to the last digit."""
    from pricing.spot import SpotAssumptions

    defaults = SpotAssumptions()
    values = {}
    for a in doc.get("assumptions") or []:
        field_name = _SPOT_FIELDS.get(str(a.get("name")))
        value = a.get("value")
        if field_name and isinstance(value, (int, float)) and not isinstance(value, bool):
            default = getattr(defaults, field_name)
            values[field_name] = default if round(default, 4) == round(float(value), 4) else float(value)
    return dataclasses.replace(defaults, **values)


def spot_row(rec: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any] | None:
    if not rec.get("spot") or not rec.get("hours") or rec.get("usd_per_hour") is None:
        return None
    from pricing.spot import overhead_factor

    base = spot_assumptions_from(doc)
    applied = float(rec.get("overhead_factor") or overhead_factor(base))
    work_hours = rec["hours"] / applied  # hours without preemption overhead

    rate = base.preemptions_per_hour
    high = rate * SPOT_RATE_HIGH_MULTIPLIER if rate > 0 else 0.2
    a = AllIn(rec, doc)
    restarts = float((rec.get("startup") or {}).get("spot_restarts") or 0.0) if a.has_startup else 0.0

    def train(r: float) -> float:
        return work_hours * overhead_factor(dataclasses.replace(base, preemptions_per_hour=r))

    def startup(r: float) -> float:
        """Start-up with the restarts' share moved with the expected preemptions (rate x training hours)."""
        expected = rate * rec["hours"]
        return a.startup - restarts + (restarts * r * train(r) / expected if expected > 0 else 0.0)

    usd_h = rec["usd_per_hour"]
    row = _row("spot preemption rate", rate, 0.0, high, "preemptions/h", a.cost(usd_h, train(0.0), startup(0.0)),
               a.cost(usd_h, train(high), startup(high)), option_label(rec))
    return _timed(row, a.base_cost(), a.time(rec["hours"]), a.time(train(0.0), startup(0.0)),
                  a.time(train(high), startup(high)))


# LOCAL_RANGES key -> (pricing.local.LocalProfile field, unit shown)
LOCAL_FIELDS: dict[str, tuple[str, str]] = {
    "utilisation": ("utilisation", "fraction of the year busy"),
    "electricity price": ("electricity_usd_per_kwh", "USD/kWh"),
    "hardware price": ("purchase_price_usd", "USD"),
    "lifetime": ("lifetime_years", "years"),
}


def local_profile_from(entry: dict[str, Any]):  # -> pricing.local.LocalProfile | None
    """Rebuild the pricing.local.LocalProfile behind a document's `local_profiles` entry from its
    assumption rows ("<name>: <field>"); None when a field the cost model needs is missing."""
    from pricing.local import LocalProfile

    name = str(entry.get("name"))
    values: dict[str, Any] = {}
    for a in entry.get("assumptions") or []:
        label = str(a.get("name"))
        if label.startswith(f"{name}: "):
            key = label[len(name) + 2:]
            if key in LocalProfile.__dataclass_fields__:
                values[key] = a.get("value")
    values.update(name=name, gpu=entry.get("gpu"))
    if entry.get("gpu_count") is not None:
        values["gpu_count"] = entry["gpu_count"]
    if entry.get("utilisation") is not None:
        values["utilisation"] = entry["utilisation"]
    try:
        return LocalProfile(**values)
    except TypeError:  # a required field is missing from the document
        return None


def local_rows(rec: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a local option: each of LOCAL_RANGES' assumptions moved with the others held, the job's
    cost recomputed by pricing.local.job_cost (the figure -- marginal or loaded -- the option's cost is)."""
    if rec.get("target") != "local" or not rec.get("hours"):
        return []
    entry = next((p for p in doc.get("local_profiles") or [] if p.get("name") == rec.get("instance_type")), None)
    if entry is None:
        return []
    from pricing.local import job_cost

    profile = local_profile_from(entry)
    if profile is None:
        return []
    hours, gpus = rec["hours"], rec.get("gpus") or profile.gpu_count
    base_cost = job_cost(profile, hours, gpus)
    # all-in: the machine's cost over the time to result (training + start-up), as the plan's cost_with_startup_usd
    ttr = rec.get("time_to_result_hours") if _num(rec.get("time_to_result_hours")) else hours
    figure = "marginal_cost_usd"
    if rec.get("cost_usd") is not None and (abs(base_cost.loaded_cost_usd - rec["cost_usd"])
                                            < abs(base_cost.marginal_cost_usd - rec["cost_usd"])):
        figure = "loaded_cost_usd"

    def cost(field_name: str, value: float) -> float:
        return getattr(job_cost(dataclasses.replace(profile, **{field_name: value}), ttr, gpus), figure)

    base_all_in = getattr(job_cost(profile, ttr, gpus), figure)

    label = option_label(rec)
    rows = []
    for name, (lo_m, hi_m) in LOCAL_RANGES.items():
        field_name, unit = LOCAL_FIELDS[name]
        base = float(getattr(profile, field_name))
        lo, hi = base * lo_m, base * hi_m
        if name == "utilisation":
            lo, hi = max(lo, 0.01), min(hi, 1.0)
        rows.append(_timed(_row(name, base, lo, hi, unit, cost(field_name, lo), cost(field_name, hi), label),
                           base_all_in, ttr, ttr, ttr))
    return rows


def sensitivity_rows(doc: dict[str, Any], *, throughput_error_pct: float | None = None) -> list[dict[str, Any]]:
    """The `sensitivity` rows for the document's recommended option ([] without a recommendation)."""
    rec = doc.get("recommendation")
    if not rec:
        return []
    if throughput_error_pct is None:
        throughput_error_pct = (doc.get("accuracy") or {}).get("throughput_median_ape_pct")
        if throughput_error_pct is None:
            throughput_error_pct = DEFAULT_THROUGHPUT_ERROR_PCT
    rows = []
    row = throughput_row(rec, float(throughput_error_pct), doc)
    if row:
        rows.append(row)
    for row in (price_row(rec, doc), dataset_row(rec, doc), startup_row(rec, doc), spot_row(rec, doc)):
        if row:
            rows.append(row)
    rows.extend(local_rows(rec, doc))
    if rec.get("target") != "local":
        rows.extend(local_alternative_rows(doc))
    return rows


def local_alternative_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """For a cloud recommendation: the ownership rows (LOCAL_RANGES) of the cheapest local option that fits, each
    marked ``alternative`` with its own ``base_cost_usd`` -- what finance asks before buying instead of renting."""
    local = [o for o in doc.get("options") or [] if o.get("target") == "local" and o.get("fits")
             and isinstance(o.get("cost_usd"), (int, float)) and o.get("hours")]
    if not local:
        return []
    alt = min(local, key=lambda o: o["cost_usd"])
    rows = local_rows(alt, doc)
    for row in rows:
        row["alternative"] = True
    return rows
