"""The throughput benchmark runs end to end at toy size on the CPU: the real trainer loop against HF Trainer with
DataCollatorWithFlattening, tokens counted the same way, warm-up left out, results written as JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_benchmark_reports_recipe_and_baseline(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--tiny", "--steps", "3", "--warmup", "1",
                           "--json", "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == result
    assert result["device"] == "cpu" and result["shape"] == "tiny" and result["planner"] is None
    for side in ("recipe", "baseline"):
        assert result[side]["tokens_per_s"] > 0 and result[side]["steps"] == 4  # 1 warm-up + 3 timed
        assert result[side]["peak_allocated_gib"] is None  # no GPU: memory is not measured
    # the baseline's batch is sized to the recipe's tokens per step (within the spread of example lengths)
    assert 0.5 < result["baseline"]["tokens_per_step"] / result["recipe"]["tokens_per_step"] < 2.0
    assert result["speedup"] == pytest.approx(result["recipe"]["tokens_per_s"] / result["baseline"]["tokens_per_s"])
