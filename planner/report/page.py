"""report.html: one self-contained page (inline CSS and SVG, no scripts, no fetches) built from the plan
document with a Jinja2 template whose autoescape is on, so job names and notes show as text.
"""
from __future__ import annotations

from typing import Any

from planner.report import charts
from planner.report.rows import assumption_rows, chosen_gpu_plan, option_rows

# The HTML options table shows the recommended option, the Pareto front and the cheapest options up to this
# many rows; options.csv / report.xlsx hold them all (a full catalog sweep runs to hundreds).
MAX_TABLE_ROWS = 40

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
    return {
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
            "memory": charts.memory_chart(plan),
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
    env.filters["money"] = charts.money
    env.filters["hours"] = charts.hours_text
    env.filters["num"] = _num
    env.filters["kind"] = _kind
    env.filters["pct"] = _pct
    env.filters["svg"] = markupsafe.Markup
    return env


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1e6:
            return f"{v:,.0f}"
        return f"{v:,.{digits}f}"
    return str(v)


def _pct(v: Any) -> str:
    """A fraction (the document's utilisations; a break-even may exceed 1) shown as a percentage."""
    if v is None:
        return "n/a"
    return f"{float(v) * 100:.0f}%"


def render_html(doc: dict[str, Any]) -> str:
    env = _environment()
    return env.get_template("report.html").render(**build_context(doc))
