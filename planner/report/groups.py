"""The options table as a reviewer reads it: one row per provider x instance x GPU count x spot/on-demand,
showing the cheapest region and how many regions offer it. The per-region list stays in options.csv/report.xlsx.
"""
from __future__ import annotations

import math
from typing import Any

from planner.report.rows import is_recommended

GROUP_KEY = ("target", "provider", "instance_type", "gpu", "gpus", "nodes", "spot")


def price_flag(option: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """The option's price flag ("normal" | "outlier" | "stale"); without one in the plan, "stale" when its
    provider's prices are marked stale, else None (not in this plan)."""
    flag = option.get("price_flag")
    if isinstance(flag, str):
        return flag
    if ((doc.get("prices") or {}).get(option.get("provider")) or {}).get("stale"):
        return "stale"
    return None


def cost_key(option: dict[str, Any]) -> tuple[float, float, float]:
    """Cheapest first: the job's cost, else the cost per token, else the hourly price."""
    def v(key: str) -> float:
        x = option.get(key)
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else math.inf
    return (v("cost_usd"), v("usd_per_million_tokens"), v("usd_per_hour"))


def grouped_options(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group, cheapest group first (fitting groups before the rest). Each row is the group's
    cheapest option plus: regions (count), price_low/price_high ($/h across regions), flags (sorted set of
    non-normal price flags in the group), recommended (the group holds the recommendation), rec_region."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for o in doc.get("options") or []:
        groups.setdefault(tuple(o.get(k) for k in GROUP_KEY), []).append(o)
    rows = []
    for members in groups.values():
        best = min(members, key=cost_key)
        prices = [o["usd_per_hour"] for o in members if isinstance(o.get("usd_per_hour"), (int, float))]
        flags = sorted({f for f in (price_flag(o, doc) for o in members) if f and f != "normal"})
        rec = next((o for o in members if is_recommended(o, doc)), None)
        rows.append({**best, "regions": len({o.get("region") for o in members}),
                     "price_low": min(prices) if prices else None, "price_high": max(prices) if prices else None,
                     "flags": flags, "flag": price_flag(best, doc), "recommended": rec is not None,
                     "rec_region": rec.get("region") if rec else None})
    rows.sort(key=lambda r: (not r.get("fits"), cost_key(r)))
    return rows
