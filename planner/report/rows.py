"""Flat, tabular views of a plan document: what options.csv, assumptions.csv, the XLSX sheets and the
HTML tables show. Pure reads of the document; nothing here recomputes a plan number.
"""
from __future__ import annotations

from typing import Any

# Columns of options.csv / the "options" sheet: every Option field, in the order a reader scans them.
OPTION_COLUMNS = (
    "recommended", "target", "provider", "region", "zone", "instance_type", "gpu", "gpus", "nodes", "spot",
    "usd_per_hour", "usd_per_gpu_hour", "hours", "cost_usd", "fits", "tokens_per_s", "usd_per_million_tokens",
    "pareto", "rank_cost", "rank_time", "overhead_factor", "source", "as_of", "notes",
)
ASSUMPTION_COLUMNS = ("scope", "name", "value", "unit", "source", "category")
# cost_*: the all-in cost (with start-up); time_*: the time to result (planner/decide/sensitivity.py)
SENSITIVITY_COLUMNS = ("assumption", "base", "low", "high", "unit", "cost_low_usd", "cost_high_usd", "option",
                       "time_low_hours", "time_high_hours")

_IDENTITY = ("target", "provider", "instance_type", "region", "zone", "gpu", "gpus", "nodes", "spot")


def option_key(option: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies an option (offer x GPU count x pricing kind)."""
    return tuple(option.get(k) for k in _IDENTITY)


def is_recommended(option: dict[str, Any], doc: dict[str, Any]) -> bool:
    rec = doc.get("recommendation")
    return bool(rec) and option_key(option) == option_key(rec)


def option_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per option, in the document's order; notes joined with '; '."""
    rows = []
    for opt in doc.get("options") or []:
        row: dict[str, Any] = {}
        for col in OPTION_COLUMNS:
            if col == "recommended":
                row[col] = is_recommended(opt, doc)
            elif col == "notes":
                notes = opt.get("notes") or []
                row[col] = "; ".join(str(n) for n in notes) if isinstance(notes, list) else str(notes)
            else:
                row[col] = opt.get(col)
        rows.append(row)
    return rows


def assumption_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every assumption the plan rests on: the plan's own, each local profile's, and each price source."""
    rows: list[dict[str, Any]] = []
    for a in doc.get("assumptions") or []:
        rows.append({"scope": "plan", **{k: a.get(k) for k in ("name", "value", "unit", "source")},
                     "category": a.get("category") if a.get("category") in ("finance", "estimator") else
                     ("estimator" if str(a.get("name", "")).startswith("estimator") else "finance")})
    for profile in doc.get("local_profiles") or []:
        prefix = f"{profile.get('name')}: "
        for a in profile.get("assumptions") or []:
            name = str(a.get("name"))
            rows.append({"scope": f"local:{profile.get('name')}",
                         "name": name[len(prefix):] if name.startswith(prefix) else name,
                         **{k: a.get(k) for k in ("value", "unit", "source")}, "category": "finance"})
    for provider, p in sorted((doc.get("prices") or {}).items()):
        source = p.get("source")
        rows.append({"scope": f"prices:{provider}", "name": "as_of", "value": p.get("as_of"), "unit": "date",
                     "source": source, "category": "finance"})
        rows.append({"scope": f"prices:{provider}", "name": "age_days", "value": p.get("age_days"), "unit": "days",
                     "source": source, "category": "finance"})
        rows.append({"scope": f"prices:{provider}", "name": "stale", "value": p.get("stale"), "unit": "",
                     "source": source, "category": "finance"})
    acc = doc.get("accuracy") or {}
    for key in ("memory_mape_pct", "throughput_median_ape_pct", "rows_memory", "rows_throughput"):
        if key in acc:
            unit = "%" if key.endswith("_pct") else "rows"
            rows.append({"scope": "accuracy", "name": key, "value": acc.get(key), "unit": unit,
                         "source": acc.get("source")})
    return rows


def sensitivity_table(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: r.get(k) for k in SENSITIVITY_COLUMNS} for r in doc.get("sensitivity") or []]


def chosen_gpu_plan(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The GpuPlan behind the recommendation (or the single plan when the job named a GPU)."""
    if isinstance(doc.get("gpus"), list):
        rec = doc.get("recommendation") or {}
        plans = doc["gpus"]
        for plan in plans:
            if plan.get("gpu") == rec.get("gpu") and plan.get("gpus") == rec.get("gpus"):
                return plan
        return None
    if "memory" in doc:
        return doc
    return None


def _category(row: dict[str, Any]) -> str:
    cat = row.get("category")
    if cat in ("finance", "estimator"):
        return cat
    name = str(row.get("name", ""))
    return "estimator" if name.startswith("estimator") or row.get("scope") == "accuracy" else "finance"


def split_assumptions(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(finance, engineering) assumption rows: the plan's `category` where it has one (else estimator
    constants by name), local-profile and price-source rows are finance; finance first in the document's order."""
    finance, engineering = [], []
    plan_rows = {str(a.get("name")): a for a in doc.get("assumptions") or []}
    for row in assumption_rows(doc):
        src = plan_rows.get(str(row.get("name"))) if row["scope"] == "plan" else None
        category = _category({**row, **({"category": src.get("category")} if src else {})})
        (finance if category == "finance" else engineering).append({**row, "category": category})
    return finance, engineering
