"""Preemption loses little: SIGTERM is read between micro batches, an abandoned step resumes exactly, a save that
cannot finish before the kill is skipped (the last complete checkpoint stays), and every checkpoint is an adapter."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "examples" / "smoke.yaml"


def _spec(out: Path, **over):
    from train.spec import load_spec

    return load_spec(SMOKE, {"output_dir": str(out), "max_steps": 4, "grad_accum": 3, "save_steps": 100,
                             "lora_dropout": 0.1, **over})


def test_sigterm_between_micro_batches_abandons_the_step_and_resume_is_exact(tmp_path, monkeypatch):
    import torch

    import train.recipe as recipe

    torch.set_num_threads(1)
    reference = recipe.run(_spec(tmp_path / "ref"), progress=False).summary

    calls = {"n": 0}
    real = recipe._tensors

    def tensors_then_sigterm(batch, device):
        calls["n"] += 1
        if calls["n"] == 3 * 2 + 2:  # the second micro batch of step 3
            os.kill(os.getpid(), signal.SIGTERM)
        return real(batch, device)

    out = tmp_path / "run"
    monkeypatch.setattr(recipe, "_tensors", tensors_then_sigterm)
    with pytest.raises(recipe.Preempted) as stopped:
        recipe.run(_spec(out), progress=False)
    assert stopped.value.step == 2 and stopped.value.saved  # step 3 was abandoned, not half-applied
    assert calls["n"] == 3 * 2 + 2  # no micro batch ran after the flag was read
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    config = json.loads((out / "checkpoint-2" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and (out / "checkpoint-2" / "adapter_model.safetensors").exists()

    monkeypatch.setattr(recipe, "_tensors", real)
    resumed = recipe.run(_spec(out), progress=False).summary
    assert resumed["resumed_from_step"] == 2
    # same dropout masks (RNG from the start of the abandoned step) and the same data: the same result
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], abs=1e-6)
    assert [h["status"] for h in resumed["history"]] == ["saved", "complete"]


def _env(**extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(REPO), **extra}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def test_a_save_that_cannot_finish_before_the_kill_is_skipped_and_the_last_checkpoint_stays(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "train", "--no-progress", "--config", str(SMOKE), "--output-dir", str(out),
           "--max-steps", "40", "--save-steps", "2"]
    # a grace far shorter than any save: the trainer must not start one it cannot finish
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(GPUPLAN_STOP_GRACE_S="0.001"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "checkpoint-2" / "COMPLETE").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 3:
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.005)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-2000:]
    line = [x for x in stderr.splitlines() if x.startswith("preempted:")][0]
    assert "save skipped" in line and "stays the newest" in line
    steps = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert steps and all(s % 2 == 0 for s in steps)  # only the regular saves, all complete
    assert all((out / f"checkpoint-{s}" / "COMPLETE").exists() for s in steps)
    assert not list(out.glob(".checkpoint-*"))


def test_checkpoints_default_to_an_interval_in_time():
    from train.spec import JobSpec, spec_from_dict

    assert JobSpec().save_steps is None and JobSpec().save_every_minutes == 10.0
    assert spec_from_dict({"model": "m", "save_every_minutes": 2.5}).save_every_minutes == 2.5
