"""Cost over months: this job N times a month on the cloud, on local hardware, or both (the hybrid case).

Cash view, month by month, over a horizon (default 36 months):
* cloud  -- every run on the recommended cloud option at its cost with start-up; no capex.
* local  -- capex up front in month 0 (nothing when the profile is already owned), then per month: the
  electricity of the runs (their time to result) plus maintenance (a % of capex a year). Cost of capital and
  the residual value are not in the cash view (the local profile's $/GPU-hour carries them).
  The machine runs at most (730 h - other use) a month: more runs than fit are "not feasible" locally.
* hybrid -- the local machine takes as many runs a month as fit, the rest go to the cloud option.
payback_month: the first month whose cumulative cost is at or below the cloud-only one (None: not within the
horizon). The cheapest feasible scenario over the horizon is named.
"""
from __future__ import annotations

import math
from typing import Any

from pricing.local import HOURS_PER_MONTH, LocalProfile, job_cost

DEFAULT_HORIZON_MONTHS = 36
MAX_HORIZON_MONTHS = 240
MAX_RUNS_PER_MONTH = 1e6


def check_workload(runs_per_month: Any, other_use_hours: Any = 0.0, horizon_months: Any = None) -> int:
    """Validate the workload flags; the horizon in months. Bad values raise PricingInputError naming the flag."""
    from pricing.errors import PricingInputError

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if runs_per_month is not None and (not number(runs_per_month) or not 0 < runs_per_month <= MAX_RUNS_PER_MONTH):
        raise PricingInputError("runs_per_month", f"{runs_per_month!r} must be a number of runs above 0",
                                "e.g. --runs-per-month 4")
    if not number(other_use_hours) or not 0 <= other_use_hours <= HOURS_PER_MONTH:
        raise PricingInputError("other_use_hours", f"{other_use_hours!r} must be 0 to {HOURS_PER_MONTH:.0f} hours "
                                "a month", "e.g. --other-use-hours 100")
    horizon = DEFAULT_HORIZON_MONTHS if horizon_months is None else horizon_months
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON_MONTHS:
        raise PricingInputError("horizon_months", f"{horizon!r} must be a whole number of months from 1 to "
                                f"{MAX_HORIZON_MONTHS}", "e.g. --horizon-months 36")
    return horizon


def _scenario(capex: float, per_run: float, per_month: float, running: float, horizon: int, runs: float,
              local_share: float | None = None, **extra: Any) -> dict[str, Any]:
    cumulative = [round(capex + m * per_month, 4) for m in range(horizon + 1)]
    out = {"per_run_usd": round(cumulative[-1] / (runs * horizon), 4) if runs and horizon else round(per_run, 4),
           "per_month_usd": round(per_month, 4), "per_year_usd": round(12 * per_month, 4),
           "horizon_usd": cumulative[-1], "capex_usd": round(capex, 4), "running_per_month_usd": round(running, 4),
           "payback_month": None, "cumulative_usd": cumulative}
    if local_share is not None:
        out["local_share"] = round(local_share, 4)
    out.update(extra)
    return out


def _payback(s: dict[str, Any], cloud: dict[str, Any]) -> int | None:
    for m, (a, b) in enumerate(zip(s["cumulative_usd"], cloud["cumulative_usd"])):
        if m >= 1 and a <= b:
            return m
    return None


def periods(runs_per_month: float, horizon_months: int, cloud_option: dict[str, Any] | None,
            local: list[tuple[LocalProfile, float]], other_use_hours: float = 0.0) -> dict[str, Any]:
    """`local`: (profile, hours per run) for each local profile that fits the job."""
    n, m = float(runs_per_month), int(horizon_months)
    scenarios: dict[str, dict[str, Any]] = {}
    cloud_run = (cloud_option or {}).get("cost_with_startup_usd")
    if cloud_run is None and cloud_option is not None:
        cloud_run = cloud_option.get("cost_usd")
    if cloud_run is not None:
        scenarios["cloud"] = _scenario(0.0, cloud_run, n * cloud_run, n * cloud_run, m, n)
    best: tuple[float, LocalProfile, dict[str, Any], dict[str, Any] | None] | None = None
    for p, hours in local:
        capex = 0.0 if p.already_owned else p.capex_usd
        energy = job_cost(p, hours).energy_cost_usd
        maint = p.capex_usd * p.maintenance_pct_per_year / 100 / 12
        free = max(0.0, HOURS_PER_MONTH - other_use_hours)
        capacity = math.floor(free / hours) if hours > 0 else math.inf
        feasible = capacity >= n
        loc = _scenario(capex, energy, n * energy + maint, n * energy + maint, m, n, feasible=feasible,
                        capacity_runs_per_month=capacity if capacity != math.inf else None)
        hyb = None
        if cloud_run is not None:
            here = min(n, capacity)
            rest = n - here
            per_month = here * energy + maint + rest * cloud_run
            hyb = _scenario(capex, 0.0, per_month, per_month, m, n, local_share=here / n if n else 0.0)
        score = (hyb or loc)["horizon_usd"] if (hyb or feasible) else math.inf
        if best is None or score < best[0]:
            best = (score, p, loc, hyb)
    local_name = None
    if best is not None:
        _, p, loc, hyb = best
        local_name = p.name
        scenarios["local"] = loc
        if hyb is not None:
            scenarios["hybrid"] = hyb
    if "cloud" in scenarios:
        for k in ("local", "hybrid"):
            if k in scenarios:
                scenarios[k]["payback_month"] = _payback(scenarios[k], scenarios["cloud"])
    feasible = {k: v for k, v in scenarios.items() if v.get("feasible", True)}
    cheapest = min(feasible, key=lambda k: (feasible[k]["horizon_usd"], k != "cloud")) if feasible else None
    desc = None
    if cloud_option is not None:
        kind = "spot" if cloud_option.get("spot") else "on-demand"
        desc = (f"{cloud_option.get('provider')} {cloud_option.get('instance_type')} in {cloud_option.get('region')} "
                f"({cloud_option.get('gpus')}x {cloud_option.get('gpu')}, {kind})")
    return {"runs_per_month": n, "horizon_months": m, "currency": "USD", "cloud_option": desc,
            "local_profile": local_name, "scenarios": scenarios, "cheapest": cheapest}
