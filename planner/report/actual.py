"""Budget against actual: `gpuplan report --actual RUN_DIR` sets the plan's time and cost beside what runs measured.

A run directory holds the trainer's summary.json (train/metrics.py: train_time_s, steps, step_time_s, ...). The
measured cost is the measured training time at the planned option's price per hour: the trainer knows no prices,
so the difference shown is the estimator's time error priced, which is what a budget review asks about.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from train.spec import SpecError

MAX_SUMMARY_BYTES = 5 * 1024 * 1024  # a summary.json is a few kB; the embedded spec keeps it far under this


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def read_summary(path: str | Path) -> tuple[str, dict[str, Any]]:
    p = Path(path)
    f = p / "summary.json" if p.is_dir() else p
    if not f.is_file():
        raise SpecError("--actual", f"{p} holds no summary.json", "give a run folder written by python -m train")
    if f.stat().st_size > MAX_SUMMARY_BYTES:
        raise SpecError("--actual", f"{f} is too large for a summary.json", "give a run folder written by python -m train")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SpecError("--actual", f"{f} is not valid JSON", "give a run folder written by python -m train") from None
    if not isinstance(data, dict):
        raise SpecError("--actual", f"{f} is not a summary object", "give a run folder written by python -m train")
    return (p.name if p.is_dir() else p.parent.name) or str(p), data


def measured_hours(summary: dict[str, Any]) -> float | None:
    seconds = _num(summary.get("train_time_s"))
    if seconds is None:
        steps, step = _num(summary.get("steps")), _num(summary.get("step_time_s"))
        seconds = steps * step if steps is not None and step is not None else None
    return _num(seconds / 3600) if seconds is not None else None


def actual_rows(doc: dict[str, Any], run_dirs: Iterable[str]) -> list[dict[str, Any]]:
    """One row per run: planned and measured hours and cost for the recommended option."""
    rec = doc.get("recommendation") or {}
    price = _num(rec.get("usd_per_hour"))
    planned_h, planned_c = _num(rec.get("hours")), _num(rec.get("cost_usd"))
    rows = []
    for d in run_dirs:
        name, summary = read_summary(d)
        hours = measured_hours(summary)
        cost = hours * price if hours is not None and price is not None else None
        diff = (cost / planned_c - 1) * 100 if _num(cost) is not None and planned_c else None
        cost, diff = _num(cost), _num(diff)  # an absurd summary overflows to inf: shown as n/a
        rows.append({"run": name, "planned_hours": planned_h, "measured_hours": _num(hours),
                     "planned_cost_usd": planned_c, "measured_cost_usd": cost, "cost_diff_pct": diff,
                     "tokens_per_s": _num(summary.get("tokens_per_s")), "steps": summary.get("steps")})
    return rows
