"""The first screen of the report: what to run, where, cost and time to result as ranges, the main risks one
line each, and the alternatives a reviewer asks about. Read from the plan document (`recommendation`,
`alternatives`, `risks`, ranges); where an older plan lacks a key, the same facts are picked out of what it has
(the sensitivity rows, the options, the price sources) and labelled as such -- nothing is re-planned.
"""
from __future__ import annotations

import math
from typing import Any

from planner.report import fmt
from planner.report.groups import price_flag
from planner.report.rows import chosen_gpu_plan


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def kind(o: dict[str, Any]) -> str:
    if o.get("target") == "local":
        return "local"
    return "spot" if o.get("spot") else "on-demand"


def describe(o: dict[str, Any] | None) -> str:
    """One line naming an option and its cost and time (with start-up when the plan has it)."""
    if not o:
        return "none in this plan"
    where = f" in {o['region']}" if o.get("region") else ""
    if o.get("target") == "local":
        head = f"{o.get('instance_type')} (own hardware), {o.get('gpus')} x {o.get('gpu')}"
    else:
        head = f"{o.get('provider')} {o.get('instance_type')}{where}, {o.get('gpus')} x {o.get('gpu')}, {kind(o)}"
    cost = _num(o.get("cost_with_startup_usd")) or _num(o.get("cost_usd"))
    hours = _num(o.get("time_to_result_hours")) or _num(o.get("hours"))
    if cost is not None and hours is not None:
        return f"{head}: {fmt.money(cost)}, {fmt.hours(hours)} to result"
    if _num(o.get("usd_per_million_tokens")) is not None:
        return f"{head}: {fmt.money(o['usd_per_million_tokens'])} per million tokens"
    return head


def ranges(doc: dict[str, Any]) -> dict[str, Any]:
    """Cost and time to result as [low, expected, high], and where they come from."""
    rec = doc.get("recommendation") or {}
    cost_r, time_r = rec.get("cost_range_usd"), rec.get("time_to_result_range_hours")
    if isinstance(cost_r, list) and len(cost_r) == 3:
        return {"cost": cost_r, "time": time_r if isinstance(time_r, list) and len(time_r) == 3 else None,
                "source": "the plan's range: the estimator's measured error and the price confidence"}
    cost, hours = _num(rec.get("cost_usd")), _num(rec.get("hours"))
    row = next((r for r in doc.get("sensitivity") or [] if str(r.get("assumption", "")).startswith("throughput")),
               None)
    if cost and hours and row and _num(row.get("cost_low_usd")) and _num(row.get("cost_high_usd")):
        lo, hi = sorted((row["cost_low_usd"], row["cost_high_usd"]))
        return {"cost": [lo, cost, hi], "time": [hours * lo / cost, hours, hours * hi / cost],
                "source": f"the plan's {row['assumption']} sensitivity row only (this plan carries no full range)"}
    return {"cost": None, "time": None, "source": "not in this plan"}


def _about(warning: str, o: dict[str, Any]) -> bool:
    text = warning.lower()
    return (str(o.get("provider", "")).lower() in text and str(o.get("instance_type", "")).lower() in text) or (
        text.startswith(f"{str(o.get('provider', '')).lower()} prices"))


def risks(doc: dict[str, Any]) -> list[str]:
    """The recommendation's risks, one line each: the plan's own list, else those its keys show."""
    rec = doc.get("recommendation") or {}
    if isinstance(rec.get("risks"), list) and rec["risks"]:
        out = [str(r) for r in rec["risks"]]
    else:
        out = []
        if rec.get("spot"):
            factor = _num(rec.get("overhead_factor"))
            out.append("Spot capacity: the instance can be reclaimed; the figures include "
                       + (f"x{factor:.2f} " if factor else "") + "expected preemption overhead, and capacity may "
                       "not be available when you launch.")
        flag = price_flag(rec, doc)
        if flag in ("stale", "outlier"):
            out.append(f"Price flagged {flag}: check the {rec.get('provider')} price before committing.")
        meta = (doc.get("prices") or {}).get(rec.get("provider")) or {}
        if meta.get("note"):
            out.append(f"{rec.get('provider')} prices: {meta['note']}.")
        plan = chosen_gpu_plan(doc)
        if plan and plan.get("fits") == "tight":
            band = (plan.get("memory") or {}).get("band_gib")
            out.append("Tight memory fit: the peak is inside the estimator's error band"
                       + (f" ({band[0]:.1f}-{band[1]:.1f} GiB)" if isinstance(band, list) and len(band) == 2 else "")
                       + "; it may run out of memory.")
        for w in doc.get("warnings") or []:
            if _about(str(w), rec) and str(w) not in out:
                out.append(str(w))
    return list(dict.fromkeys(out))


def alternatives(doc: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """cheapest_on_demand, fastest, local: the plan's `alternatives`, else picked out of its options."""
    alt = doc.get("alternatives")
    if isinstance(alt, dict):
        return {k: alt.get(k) for k in ("cheapest_on_demand", "fastest", "local")}
    fitting = [o for o in doc.get("options") or [] if o.get("fits")]

    def cheapest(opts: list[dict[str, Any]]) -> dict[str, Any] | None:
        scored = [o for o in opts if _num(o.get("cost_usd")) is not None or _num(o.get("usd_per_million_tokens"))]
        return min(scored, key=lambda o: (_num(o.get("cost_usd")) or math.inf,
                                          _num(o.get("usd_per_million_tokens")) or math.inf), default=None)

    timed = [o for o in fitting if _num(o.get("hours")) is not None]
    return {
        "cheapest_on_demand": cheapest([o for o in fitting if o.get("target") == "cloud" and not o.get("spot")]),
        "fastest": min(timed, key=lambda o: (o["hours"], _num(o.get("cost_usd")) or math.inf), default=None),
        "local": cheapest([o for o in fitting if o.get("target") == "local"]),
    }


def other_warnings(doc: dict[str, Any]) -> list[str]:
    """The plan's warnings that are not about the recommendation (shown further down, not on the first screen)."""
    shown = set(risks(doc))
    return [w for w in dict.fromkeys(str(w) for w in doc.get("warnings") or []) if w not in shown]
