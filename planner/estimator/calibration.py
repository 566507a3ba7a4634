"""A user's calibration from real runs: `gpuplan calibrate RUN_DIR...` fits it, `gpuplan plan` applies it.

Each run's summary.json (train/metrics.py: peak_memory_allocated_gib, peak_memory_reserved_gib,
tokens_per_s, gpu, gpu_count, spec) is validated strictly, planned again with the analytic model, and
compared: the memory correction is the median measured/predicted peak allocated over all runs (memory does
not depend on the GPU type); the speed efficiency is the median measured/predicted tokens/s per GPU type.
The file keeps its provenance (each run's path, date, GPU, job and ratios) and is written atomically to
$GPUPLAN_CONFIG_DIR/calibration.json, else $XDG_CONFIG_HOME/gpuplan/ or ~/.config/gpuplan/.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.result import ThroughputEstimate
from train.spec import SpecError

FILE_NAME = "calibration.json"
VERSION = 1
# Plausible bounds for one measurement: the largest card has 192 GiB (MI300X), no fine-tuning step runs
# above 1e8 tokens/s; ratios outside 1/3..3 mean the run was not the job its spec describes.
MAX_GIB = 1024.0
MAX_TOKENS_PER_S = 1e8
MAX_GPUS = 4096
RATIO_RANGE = (1 / 3, 3.0)


def config_dir() -> Path:
    env = os.environ.get("GPUPLAN_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "gpuplan"


def calibration_path() -> Path:
    return config_dir() / FILE_NAME


# ------------------------------------------------------------------------------------------------------
# reading a run's summary.json strictly
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    path: str
    date: str
    device: str
    gpu: str  # the planner's GPU name
    gpu_count: int
    spec: Any  # JobSpec
    allocated_gib: float | None
    reserved_gib: float | None
    tokens_per_s: float | None


def _finite(v: Any) -> bool:
    """A JSON number that is a finite float (no bool, no int too large for a float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _number(data: dict[str, Any], key: str, where: str, lo: float, hi: float, required: bool = False) -> float | None:
    v = data.get(key)
    if v is None:
        if required:
            raise SpecError(f"{where}: {key}", "is missing", "give the summary.json python -m train wrote on a GPU")
        return None
    if not _finite(v):
        raise SpecError(f"{where}: {key}", f"must be a finite number, not {v!r}", "fix or drop this run")
    if not lo < float(v) <= hi:
        raise SpecError(f"{where}: {key}", f"{v!r} is outside ({lo:g}, {hi:g}]", "fix or drop this run")
    return float(v)


def validate_summary(data: Any, where: str) -> RunRecord:
    """A RunRecord from a parsed summary.json, or SpecError naming the field and the fix."""
    from planner.gpus import gpu_from_device_name
    from train.spec import spec_from_dict

    if not isinstance(data, dict):
        raise SpecError(where, "is not a JSON object", "give the summary.json python -m train wrote")
    if not isinstance(data.get("spec"), dict):
        raise SpecError(f"{where}: spec", "is missing or not a mapping", "give the summary.json python -m train wrote")
    device = data.get("gpu")
    if not isinstance(device, str) or not device.strip():
        raise SpecError(f"{where}: gpu", f"must name the GPU the run used, not {device!r}",
                        "calibrate with runs that trained on GPUs")
    count = data.get("gpu_count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GPUS:
        raise SpecError(f"{where}: gpu_count", f"must be a whole number of GPUs from 1 to {MAX_GPUS}, not {count!r}",
                        "fix or drop this run")
    mem_gib = data.get("gpu_memory_gib")
    gpu = gpu_from_device_name(device, mem_gib if isinstance(mem_gib, (int, float)) and not isinstance(mem_gib, bool)
                               else None)
    if gpu is None:
        raise SpecError(f"{where}: gpu", f"{device!r} is not in the planner's GPU table", "calibrate with a listed GPU")
    try:
        spec = spec_from_dict(data["spec"])
    except SpecError as exc:
        raise SpecError(f"{where}: spec.{exc.field}", exc.problem, exc.fix) from None
    alloc = _number(data, "peak_memory_allocated_gib", where, 0.0, MAX_GIB)
    reserved = _number(data, "peak_memory_reserved_gib", where, 0.0, MAX_GIB)
    tps = _number(data, "tokens_per_s", where, 0.0, MAX_TOKENS_PER_S)
    if alloc is None and tps is None:
        raise SpecError(where, "has neither peak_memory_allocated_gib nor tokens_per_s",
                        "calibrate with runs that trained on GPUs")
    if alloc is not None and reserved is not None and reserved < alloc:
        raise SpecError(f"{where}: peak_memory_reserved_gib", f"{reserved:g} is below allocated {alloc:g}",
                        "reserved memory always includes allocated; fix or drop this run")
    return RunRecord(path=where, date="", device=device, gpu=gpu, gpu_count=count, spec=spec,
                     allocated_gib=alloc, reserved_gib=reserved, tokens_per_s=tps)


def read_run(path: str | Path) -> RunRecord:
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    if not p.is_file():
        raise SpecError("run", f"{p} not found", "give a run's output folder (with summary.json) or the file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SpecError("run", f"{p} is not valid JSON", "give the summary.json that python -m train wrote") from None
    except OSError as exc:
        raise SpecError("run", f"cannot read {p} ({exc.strerror or exc})", "check the path and its permissions") from None
    rec = validate_summary(data, str(p))
    date = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
    return dataclasses.replace(rec, date=date)


# ------------------------------------------------------------------------------------------------------
# the calibration
# ------------------------------------------------------------------------------------------------------
@dataclass
class UserCalibration:
    memory_factor: float = 1.0
    memory_runs: int = 0
    speed_factors: dict[str, float] = field(default_factory=dict)  # planner GPU name -> measured/predicted
    speed_runs: dict[str, int] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    path: str = ""

    def memory_factor_for(self, gpu: str) -> float:
        return self.memory_factor

    def speed_factor_for(self, gpu: str) -> float | None:
        return self.speed_factors.get(gpu)

    def apply_speed(self, gpu: str, tput: ThroughputEstimate) -> ThroughputEstimate:
        f = self.speed_factors.get(gpu)
        if f is None:
            return tput
        return dataclasses.replace(tput, tokens_per_s=round(tput.tokens_per_s * f, 2),
                                   tokens_per_s_per_gpu=round(tput.tokens_per_s_per_gpu * f, 2),
                                   mfu=round(tput.mfu * f, 4), step_time_s=round(tput.step_time_s / f, 4))

    def summary_for(self, gpu: str) -> dict[str, Any]:
        return {"path": self.path, "created": self.created, "memory_factor": self.memory_factor,
                "memory_runs": self.memory_runs, "speed_factor": self.speed_factors.get(gpu),
                "speed_runs": self.speed_runs.get(gpu, 0), "runs": len(self.runs)}

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "created": self.created, "memory_factor": self.memory_factor,
                "memory_runs": self.memory_runs,
                "gpus": {g: {"speed_factor": f, "runs": self.speed_runs.get(g, 0)}
                         for g, f in self.speed_factors.items()},
                "runs": self.runs}

    def assumptions(self) -> list[dict[str, Any]]:
        rows = [{"name": "calibration: memory correction (measured / predicted peak allocated)",
                 "value": self.memory_factor, "unit": "ratio", "category": "estimator",
                 "source": f"median of {self.memory_runs} of your runs (gpuplan calibrate, {self.created})"}]
        for g, f in sorted(self.speed_factors.items()):
            rows.append({"name": f"calibration: {g} speed efficiency (measured / predicted tokens/s)", "value": f,
                         "unit": "ratio", "category": "estimator",
                         "source": f"median of {self.speed_runs.get(g, 0)} of your runs on {g} (gpuplan calibrate, "
                                   f"{self.created})"})
        return rows


def _ratio(measured: float | None, predicted: float, where: str, what: str) -> float | None:
    if measured is None or predicted <= 0:
        return None
    r = measured / predicted
    if not RATIO_RANGE[0] <= r <= RATIO_RANGE[1]:
        raise SpecError(f"{where}: {what}", f"measured/predicted = {r:.2f} is outside {RATIO_RANGE[0]:.2f}-"
                        f"{RATIO_RANGE[1]:.0f}", "the run is not the job its spec describes; drop it")
    return r


def fit(records: list[RunRecord], today: dt.date | None = None) -> UserCalibration:
    """Memory correction and per-GPU speed efficiency from runs (predictions without any calibration)."""
    import statistics

    from planner.estimator.estimate import evaluate
    from planner.models import resolve_model

    if not records:
        raise SpecError("runs", "none given", "give one or more run folders with summary.json")
    mem: list[float] = []
    speed: dict[str, list[float]] = {}
    runs: list[dict[str, Any]] = []
    for rec in records:
        plan = evaluate(resolve_model(rec.spec.model), rec.spec, rec.gpu, rec.gpu_count, with_suggestions=False,
                        with_limits=False)
        m = _ratio(rec.allocated_gib, plan.memory.peak_allocated_gib, rec.path, "peak_memory_allocated_gib")
        s = _ratio(rec.tokens_per_s, plan.throughput.tokens_per_s, rec.path, "tokens_per_s")
        if m is not None:
            mem.append(m)
        if s is not None:
            speed.setdefault(rec.gpu, []).append(s)
        runs.append({"path": rec.path, "date": rec.date, "gpu": rec.gpu, "gpus": rec.gpu_count,
                     "model": rec.spec.model, "method": rec.spec.method, "stack": rec.spec.stack,
                     "memory_ratio": None if m is None else round(m, 4),
                     "speed_ratio": None if s is None else round(s, 4)})
    return UserCalibration(
        memory_factor=round(statistics.median(mem), 4) if mem else 1.0, memory_runs=len(mem),
        speed_factors={g: round(statistics.median(v), 4) for g, v in speed.items()},
        speed_runs={g: len(v) for g, v in speed.items()}, runs=runs,
        created=(today or dt.datetime.now(dt.timezone.utc).date()).isoformat())


def save(cal: UserCalibration, path: Path | None = None) -> Path:
    from pricing.cache import write_atomic

    p = path or calibration_path()
    try:
        write_atomic(p, json.dumps(cal.to_dict(), indent=1) + "\n")
    except OSError as exc:
        raise SpecError("calibration", f"cannot write {p} ({exc.strerror or exc})",
                        "set GPUPLAN_CONFIG_DIR to a writable folder") from None
    cal.path = str(p)
    return p


def load(path: Path | None = None) -> UserCalibration | None:
    """The user's calibration, or None when there is none; a damaged file is a SpecError (one line, exit 2)."""
    p = path or calibration_path()
    if not p.is_file():
        return None
    fix = f"run gpuplan calibrate again, or delete {p}"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        raise SpecError("calibration", f"{p} is not valid JSON", fix) from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise SpecError("calibration", f"{p} is not a version {VERSION} calibration file", fix)

    def factor(v: Any, what: str) -> float:
        if not _finite(v) or not RATIO_RANGE[0] <= float(v) <= RATIO_RANGE[1]:
            raise SpecError("calibration", f"{what} {v!r} in {p} is not a ratio in {RATIO_RANGE[0]:.2f}-"
                            f"{RATIO_RANGE[1]:.0f}", fix)
        return float(v)

    def count(v: Any) -> int:
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    gpus = data.get("gpus") or {}
    if not isinstance(gpus, dict):
        raise SpecError("calibration", f"gpus in {p} is not a mapping", fix)
    speed, counts = {}, {}
    for g, entry in gpus.items():
        if not isinstance(entry, dict):
            raise SpecError("calibration", f"gpus.{g} in {p} is not a mapping", fix)
        speed[str(g)] = factor(entry.get("speed_factor"), f"gpus.{g}.speed_factor")
        counts[str(g)] = count(entry.get("runs"))
    runs = data.get("runs") if isinstance(data.get("runs"), list) else []
    return UserCalibration(memory_factor=factor(data.get("memory_factor", 1.0), "memory_factor"),
                           memory_runs=count(data.get("memory_runs")), speed_factors=speed, speed_runs=counts,
                           runs=runs, created=str(data.get("created", "")), path=str(p))
