"""report.html: one self-contained page (inline CSS and SVG, no scripts, no fetches) built from the plan
document with a Jinja2 template whose autoescape is on, so job names and notes show as text.
"""
from __future__ import annotations

from typing import Any

from planner.report import charts, decision, fmt
from planner.report.groups import grouped_options
from planner.report.rows import assumption_rows, chosen_gpu_plan, option_rows, split_assumptions

# The HTML options table shows the recommended option, the Pareto front and the cheapest options up to this
# many rows; options.csv / report.xlsx hold them all (a full catalog sweep runs to hundreds).
MAX_TABLE_ROWS = 40
# The grouped options table (one row per provider x instance x pricing kind) in the page and the PDF: the
# recommendation's group plus the cheapest groups up to this many rows; the full list is in CSV/XLSX.
MAX_GROUP_ROWS = 40
SCENARIOS = ("cloud", "local", "hybrid")

JOB_FIELDS = ("model", "method", "seq_len", "batch_size", "grad_accum", "gradient_checkpointing", "optimizer",
              "precision", "attention", "packing", "lora_r", "lora_alpha", "dataset_tokens", "dataset_examples",
              "mean_example_tokens", "epochs", "gpu", "gpus", "nodes", "parallel")


def _kind(o: dict[str, Any]) -> str:
    if o.get("target") == "local":
        return "local"
    return "spot" if o.get("spot") else "on-demand"


def table_options(doc: dict[str, Any], limit: int = MAX_TABLE_ROWS) -> tuple[list[dict[str, Any]], int]:
    """Options shown in the HTML table, cheapest first: recommended + Pareto front + cheapest that fit, then
    the rest, up to ``limit``. Returns (rows, how many were left out)."""
    rows = option_rows(doc)
    inf = float("inf")

    def cost(r: dict[str, Any]) -> tuple[float, float]:  # the job's cost, or per token without a dataset size
        return (r["cost_usd"] if r["cost_usd"] is not None else inf,
                r["usd_per_million_tokens"] if r["usd_per_million_tokens"] is not None else inf)

    ranked = sorted(rows, key=lambda r: (not r["recommended"], not r["pareto"], not r["fits"], cost(r)))
    shown = ranked[:limit]
    shown.sort(key=lambda r: (not r["fits"], cost(r)))
    return shown, len(rows) - len(shown)


def table_groups(doc: dict[str, Any], limit: int = MAX_GROUP_ROWS) -> tuple[list[dict[str, Any]], int]:
    """Grouped rows for the page: the recommendation's group, then the cheapest, up to ``limit``."""
    groups = grouped_options(doc)
    keep = [g for g in groups if g["recommended"]]
    for g in groups:
        if len(keep) >= limit:
            break
        if not g["recommended"]:
            keep.append(g)
    order = {id(g): i for i, g in enumerate(groups)}
    keep.sort(key=lambda g: order[id(g)])
    return keep, len(groups)


def periods_context(doc: dict[str, Any]) -> dict[str, Any] | None:
    periods = doc.get("periods")
    if not isinstance(periods, dict) or not isinstance(periods.get("scenarios"), dict):
        return None
    scenarios = [(name, periods["scenarios"][name]) for name in SCENARIOS if name in periods["scenarios"]]
    return {"p": periods, "scenarios": scenarios, "cheapest": periods.get("cheapest")}


def build_context(doc: dict[str, Any]) -> dict[str, Any]:
    job = doc.get("job") or {}
    rec = doc.get("recommendation")
    plan = chosen_gpu_plan(doc)
    shown, left_out = table_options(doc)
    options = doc.get("options") or []
    fitting = [o for o in options if o.get("fits")]
    prices = [{"provider": k, **v} for k, v in sorted((doc.get("prices") or {}).items())]
    title_name = job.get("name") or (doc.get("model") or {}).get("name") or job.get("model") or "job"
    breakdown = []
    if plan and plan.get("memory"):
        total = plan["memory"].get("peak_allocated_gib") or 0
        for k, v in (plan["memory"].get("breakdown_gib") or {}).items():
            breakdown.append({"name": k, "gib": v, "share": (v / total * 100) if total else None})
    finance, engineering = split_assumptions(doc)
    groups, n_groups = table_groups(doc)
    return {
        "fmt": fmt,
        "currency": fmt.CURRENCY_NOTE,
        "ranges": decision.ranges(doc),
        "risks": decision.risks(doc),
        "alternatives": decision.alternatives(doc),
        "describe": decision.describe,
        "other_warnings": decision.other_warnings(doc),
        "groups": groups,
        "n_groups": n_groups,
        "periods": periods_context(doc),
        "actuals": doc.get("actuals") or [],
        "global_batch": doc.get("global_batch"),
        "finance_assumptions": finance,
        "engineering_assumptions": engineering,
        "doc": doc,
        "title": f"GPU plan: {title_name}",
        "job": job,
        "job_fields": [(k, job.get(k)) for k in JOB_FIELDS if k in job],
        "model": doc.get("model") or {},
        "rec": rec,
        "rec_kind": _kind(rec) if rec else "",
        "options": shown,
        "left_out": left_out,
        "n_options": len(options),
        "n_fitting": len(fitting),
        "n_pareto": sum(1 for o in options if o.get("pareto")),
        "plan": plan,
        "plan_is_recommended": bool(plan and rec and plan.get("gpu") == rec.get("gpu")
                                    and plan.get("gpus") == rec.get("gpus")),
        "breakdown": breakdown,
        "prices": prices,
        "assumptions": assumption_rows(doc),
        "sensitivity": doc.get("sensitivity") or [],
        "local_profiles": doc.get("local_profiles") or [],
        "accuracy": doc.get("accuracy") or {},
        "warnings": list(dict.fromkeys(str(w) for w in doc.get("warnings") or [])),  # each once, in order
        "timed": charts.timed(doc),
        "stale": [p for p in prices if p.get("stale")],
        "charts": {
            "cost_time": charts.cost_time_chart(doc),
            "local_vs_cloud": charts.local_vs_cloud_chart(doc),
            "tornado": charts.tornado_chart(doc),
            "tornado_local": charts.tornado_chart(doc, local=True),
            "memory": charts.memory_chart(plan),
            "cumulative": charts.cumulative_chart(doc),
        },
    }


def _environment():  # -> jinja2.Environment
    import jinja2
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("planner.report", "templates"),
        autoescape=True,  # every {{ }} is escaped; only the SVG we generate is marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = fmt.money
    env.filters["hours"] = fmt.hours
    env.filters["number"] = fmt.number
    env.filters["num"] = _num
    env.filters["kind"] = _kind
    env.filters["pct"] = _pct
    env.filters["svg"] = markupsafe.Markup
    return env


def _num(v: Any, digits: int = 3) -> str:
    """A figure to ``digits`` significant figures (at least 3), never in exponent form (see fmt.number)."""
    return fmt.number(v, max(digits, 3))


def _pct(v: Any) -> str:
    """A fraction (the document's utilisations; a break-even may exceed 1) shown as a percentage."""
    return fmt.percent(v)


def render_html(doc: dict[str, Any]) -> str:
    env = _environment()
    return env.get_template("report.html").render(**build_context(doc))
