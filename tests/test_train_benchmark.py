"""The throughput benchmark runs end to end at toy size on the CPU and reports both sides."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tiny_benchmark_reports_recipe_and_baseline():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--tiny", "--examples", "24", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["shape"] == "tiny"
    for side in ("recipe", "baseline"):
        assert result[side]["tokens_per_s"] > 0 and result[side]["steps"] >= 2
        assert result[side]["peak_allocated_gib"] is None  # no GPU: memory is not measured
    assert result["speedup"] > 0
