"""`gpuplan check`: a run's measured memory and speed against the plan for the same job and GPUs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner.check import check_run, read_summary
from planner.estimator.estimate import evaluate
from planner.models import resolve_model
from train.spec import spec_from_dict

REPO = Path(__file__).resolve().parents[1]
SPEC = {"model": "meta-llama/Llama-3.1-8B", "method": "qlora", "seq_len": 2048, "batch_size": 2}


def _summary(tmp_path: Path, **kw) -> Path:
    data = {"steps": 100, "resumed_from_step": None, "final_loss": 1.2, "tokens_per_s": 3000.0, "step_time_s": 1.4,
            "peak_memory_allocated_gib": 11.0, "peak_memory_reserved_gib": 12.5, "gpu": "NVIDIA A100-SXM4-80GB",
            "gpu_count": 1, "spec": spec_from_dict(SPEC).to_dict()} | kw
    (tmp_path / "summary.json").write_text(json.dumps(data))
    return tmp_path


def test_check_compares_a_runs_measurements_with_the_plan_for_the_same_gpu(tmp_path):
    res = check_run(read_summary(_summary(tmp_path)))
    plan = evaluate(resolve_model(SPEC["model"]), spec_from_dict(SPEC), "A100-80GB", 1, with_suggestions=False)
    assert res["gpu"] == "A100-80GB" and res["gpus"] == 1
    mem, _, tps = res["rows"]
    assert mem["predicted"] == plan.memory.peak_allocated_gib and mem["measured"] == 11.0
    assert mem["error_pct"] == pytest.approx(round(100 * (plan.memory.peak_allocated_gib - 11.0) / 11.0, 1))
    assert tps["predicted"] == plan.throughput.tokens_per_s
    assert tps["error_pct"] == pytest.approx(round(100 * (plan.throughput.tokens_per_s - 3000) / 3000, 1))


def test_check_cli_prints_json_for_several_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _summary(a), _summary(b, gpu="NVIDIA H100 80GB HBM3", gpu_count=8)
    r = subprocess.run([sys.executable, "-m", "planner.cli", "check", str(a), str(b / "summary.json"), "--format",
                        "json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(x["gpu"], x["gpus"]) for x in out] == [("A100-80GB", 1), ("H100", 8)]


@pytest.mark.parametrize("case,needle", [("cpu", "without GPUs"), ("missing", "not found"),
                                         ("unknown gpu", "not in the planner's GPU table")])
def test_check_refuses_what_it_cannot_compare_with_one_line(tmp_path, case, needle):
    if case == "cpu":
        _summary(tmp_path, gpu=None, gpu_count=0, peak_memory_allocated_gib=None)
    elif case == "unknown gpu":
        _summary(tmp_path, gpu="Intel Data Center GPU Max 1550")
    target = tmp_path if case != "missing" else tmp_path / "nope"
    r = subprocess.run([sys.executable, "-m", "planner.cli", "check", str(target)], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_check_table_names_the_peak_moment_and_the_error_band(tmp_path):
    import os

    r = subprocess.run([sys.executable, "-m", "planner.cli", "check", str(_summary(tmp_path))], cwd=REPO,
                       capture_output=True, text=True, timeout=60, env=os.environ | {"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    assert "peak at loss_backward" in r.stdout and "error band" in r.stdout
    assert "calibrated" not in r.stdout  # no calibration file in the test's config dir
