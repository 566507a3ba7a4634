"""Golden plans for the bundled examples: any change to the estimator or the price data shows up here.

After an intended change, regenerate with:  GPUPLAN_UPDATE_GOLDEN=1 python -m pytest tests/test_planner_golden.py
and review the diff of tests/golden/*.json like any other change.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from planner.plan import plan_job
from train.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml") if p.stem != "smoke")


def essentials(doc: dict) -> dict:
    """The numbers a user acts on, without timestamps or price ages."""
    def gpu_entry(p: dict) -> dict:
        return {"gpu": p["gpu"], "gpus": p["gpus"], "fits": p["fits"],
                "peak_allocated_gib": p["memory"]["peak_allocated_gib"],
                "peak_reserved_gib": p["memory"]["peak_reserved_gib"],
                "tokens_per_s": p["throughput"]["tokens_per_s"],
                "hours": p["time"]["hours"] if p.get("time") else None,
                "max_batch_size": p["limits"]["max_batch_size"], "max_seq_len": p["limits"]["max_seq_len"]}

    rec = doc.get("recommendation") or {}
    return {
        "model": {k: doc["model"][k] for k in ("params_total", "params_trainable")},
        "gpus": [gpu_entry(p) for p in doc["gpus"]],
        "recommendation": {k: rec.get(k) for k in ("target", "provider", "instance_type", "region", "gpu", "gpus",
                                                   "spot", "usd_per_hour")}
        | {"cost_usd": round(rec["cost_usd"], 2) if rec.get("cost_usd") is not None else None}
        | {"cost_with_startup_usd": round(rec["cost_with_startup_usd"], 2)
           if rec.get("cost_with_startup_usd") is not None else None, "config": rec.get("config"),
           "price_flag": rec.get("price_flag")},
        "global_batch": doc.get("global_batch"),
        "options": len(doc["options"]),
    }


@pytest.fixture(autouse=True)
def only_the_bundled_snapshot(tmp_path, monkeypatch):
    """No user price cache or SkyPilot catalog may leak into a golden plan."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "sky"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_plan_matches_its_golden_file(example: Path):
    got = essentials(plan_job(load_spec(example)))
    path = GOLDEN / f"{example.stem}.json"
    if os.environ.get("GPUPLAN_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert path.exists(), f"no golden file for {example.name}: run with GPUPLAN_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text())
