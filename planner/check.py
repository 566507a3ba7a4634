"""Check the planner against a real run: read `summary.json` from `python -m train`, plan the same job on the
same GPUs, and compare measured with predicted peak memory and throughput.

The trainer records what the planner predicts: torch's max allocated / reserved memory per GPU (GiB) and
tokens/s over all GPUs, with the job spec it ran. A run on CPUs has no GPU figures to compare.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planner.estimator.estimate import evaluate
from planner.models import resolve_model
from train.spec import SpecError


def read_summary(path: str | Path) -> dict[str, Any]:
    """`summary.json` from a run folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    if not p.is_file():
        raise SpecError("run", f"{p} not found", "give a run's output folder (where python -m train wrote "
                                                 "summary.json) or the file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SpecError("run", f"{p} is not valid JSON", "give the summary.json that python -m train wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise SpecError("run", f"{p} has no job spec", "give the summary.json that python -m train wrote")
    return data | {"_path": str(p)}


def _error_pct(predicted: float, measured: float | None) -> float | None:
    if not measured:
        return None
    return round(100 * (predicted - measured) / measured, 1)


def check_run(summary: dict[str, Any], calibration: Any = "user") -> dict[str, Any]:
    """Predicted vs measured for one run; raises SpecError when the run has nothing to compare.

    Each row gives the analytic prediction (`predicted`) and, when a calibration applies (`calibration`:
    "user" reads the user's file; None: none), the prediction after it (`predicted_calibrated`, with its
    error), so the user sees what `gpuplan calibrate` changed.
    """
    from planner.estimator.calibration import load, validate_summary

    where = str(summary.get("_path", "summary.json"))
    device = summary.get("gpu")
    if not device:
        raise SpecError("run", f"{where} is from a run without GPUs", "check a run that trained on GPUs")
    rec = validate_summary({k: v for k, v in summary.items() if k != "_path"}, where)
    gpu, spec, world = rec.gpu, rec.spec, rec.gpu_count
    arch = resolve_model(spec.model)
    plan = evaluate(arch, spec, gpu, world, with_suggestions=False, with_limits=False)
    cal = load() if calibration == "user" else calibration
    after = evaluate(arch, spec, gpu, world, with_suggestions=False, with_limits=False,
                     calibration=cal) if cal is not None else None
    rows = []
    for name, key, measured, unit in (
        ("peak memory allocated per GPU", ("memory", "peak_allocated_gib"), rec.allocated_gib, "GiB"),
        ("peak memory reserved per GPU", ("memory", "peak_reserved_gib"), rec.reserved_gib, "GiB"),
        ("throughput, all GPUs", ("throughput", "tokens_per_s"), rec.tokens_per_s, "tokens/s"),
    ):
        predicted = getattr(getattr(plan, key[0]), key[1])
        row = {"quantity": name, "unit": unit, "predicted": predicted, "measured": measured,
               "error_pct": _error_pct(predicted, measured)}
        if after is not None:
            cal_pred = getattr(getattr(after, key[0]), key[1])
            row |= {"predicted_calibrated": cal_pred, "error_calibrated_pct": _error_pct(cal_pred, measured)}
        rows.append(row)
    return {"run": summary.get("_path"), "gpu": gpu, "device": device, "gpus": world, "model": spec.model,
            "method": spec.method, "stack": spec.stack, "peak_moment": plan.memory.peak_moment,
            "band_gib": plan.memory.band_gib, "calibration": None if cal is None else cal.path, "rows": rows}
