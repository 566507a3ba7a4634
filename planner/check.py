"""Check the planner against a real run: read `summary.json` from `python -m train`, plan the same job on the
same GPUs, and compare measured with predicted peak memory and throughput.

The trainer records what the planner predicts: torch's max allocated / reserved memory per GPU (GiB) and
tokens/s over all GPUs, with the job spec it ran. A run on CPUs has no GPU figures to compare.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planner.estimate import evaluate
from planner.gpus import gpu_from_device_name
from planner.models import resolve_model
from train.spec import SpecError, spec_from_dict


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


def check_run(summary: dict[str, Any]) -> dict[str, Any]:
    """Predicted vs measured for one run; raises SpecError when the run has nothing to compare."""
    device = summary.get("gpu")
    if not device:
        raise SpecError("run", f"{summary.get('_path', 'summary.json')} is from a run without GPUs",
                        "check a run that trained on GPUs")
    gpu = gpu_from_device_name(str(device), summary.get("gpu_memory_gib"))
    if gpu is None:
        raise SpecError("run", f"GPU {device!r} is not in the planner's GPU table", "check a run on a listed GPU")
    spec = spec_from_dict(summary["spec"])
    world = int(summary.get("gpu_count") or summary.get("world_size") or 1)
    plan = evaluate(resolve_model(spec.model), spec, gpu, world, with_suggestions=False)
    rows = []
    for name, predicted, measured, unit in (
        ("peak memory allocated per GPU", plan.memory.peak_allocated_gib, summary.get("peak_memory_allocated_gib"),
         "GiB"),
        ("peak memory reserved per GPU", plan.memory.peak_reserved_gib, summary.get("peak_memory_reserved_gib"),
         "GiB"),
        ("throughput, all GPUs", plan.throughput.tokens_per_s, summary.get("tokens_per_s"), "tokens/s"),
    ):
        rows.append({"quantity": name, "unit": unit, "predicted": predicted, "measured": measured,
                     "error_pct": _error_pct(predicted, measured)})
    return {"run": summary.get("_path"), "gpu": gpu, "device": device, "gpus": world, "model": spec.model,
            "method": spec.method, "rows": rows}
