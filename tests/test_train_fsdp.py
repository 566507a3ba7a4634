"""FSDP over two CPU processes (gloo), the toy configuration of examples/llama3-70b-qlora-fsdp.yaml:
QLoRA and LoRA train as one process would, every checkpoint is a PEFT adapter that reproduces the logits,
eval over an uneven split finishes, and SIGTERM on both ranks then the same command resumes exactly."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two-process runs: about a minute each on a shared 2-core machine

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "examples" / "toy-qlora-fsdp.yaml"
STEPS = 6
# 21 eval examples (400 x 0.0525): an uneven split over 2 ranks, which hung FSDP's eval before
COMMON = ("--max-steps", str(STEPS), "--save-steps", "3", "--data-eval-fraction", "0.0525", "--no-progress")


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        env.pop(k, None)
    return env


def _two_ranks_cmd(out: Path, *args: str) -> list[str]:
    from train.distributed import torchrun_command

    return torchrun_command(str(TOY), ["--output-dir", str(out), *args], env={"SKYPILOT_NUM_GPUS_PER_NODE": "2"},
                            python=sys.executable)


def _run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def _one_rank_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "train", "--config", str(TOY), "--output-dir", str(out), *args]


def _losses(out: Path) -> list[float]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["loss"] for r in rows if "loss" in r]


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """QLoRA under FSDP on 2 ranks, and the same job on one process with the same global batch
    (2 ranks x grad_accum 2 = grad_accum 4: the same micro batches in the same steps)."""
    root = tmp_path_factory.mktemp("fsdp")
    fsdp, single = root / "fsdp", root / "single"
    proc = _run(_two_ranks_cmd(fsdp, *COMMON))
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = _run(_one_rank_cmd(single, *COMMON, "--grad-accum", "4"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"fsdp": fsdp, "single": single}


def test_qlora_under_fsdp_trains_like_one_process(runs):
    sharded, single = _losses(runs["fsdp"]), _losses(runs["single"])
    assert len(sharded) == len(single) == STEPS
    # FSDP keeps the norms in bf16 beside the bf16-stored 4-bit weights; one process upcasts them to fp32
    assert max(abs(a - b) for a, b in zip(sharded, single)) < 2e-3, (sharded, single)
    assert sharded[-1] < sharded[0] - 0.1
    s = _summary(runs["fsdp"])
    assert s["world_size"] == 2 and s["parallel"] == "fsdp" and s["steps"] == STEPS
    # eval ran over the uneven split on both ranks and matches the single-process eval
    assert s["eval_loss"] == pytest.approx(_summary(runs["single"])["eval_loss"], abs=2e-3)
    assert s["trainable_params"] == _summary(runs["single"])["trainable_params"] > 0
    ckpt = runs["fsdp"] / f"checkpoint-{STEPS}"
    assert {"adapter_config.json", "adapter_model.safetensors", "optimizer_rank0.pt", "optimizer_rank1.pt",
            "COMPLETE"} <= {p.name for p in ckpt.iterdir()}


def _logits(adapter: Path | None, ids):
    """Logits of the plain QLoRA base (one process, 4-bit stored as uint8) with `adapter` loaded by PEFT."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from train.smoke import smoke_model_folder

    with smoke_model_folder() as source:
        base = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.bfloat16, device_map={"": "cpu"},
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=True,
                                                   bnb_4bit_compute_dtype=torch.bfloat16))
        model = PeftModel.from_pretrained(base, str(adapter)) if adapter else base
        with torch.no_grad():
            return model.eval()(input_ids=ids).logits.float()


def test_fsdp_checkpoints_load_into_a_plain_peft_model_and_reproduce_the_logits(runs):
    import torch

    torch.set_num_threads(1)
    ids = torch.tensor([list(b"What is 4 plus 8?")])
    final = _logits(runs["fsdp"] / "adapter", ids)
    from_checkpoint = _logits(runs["fsdp"] / f"checkpoint-{STEPS}", ids)
    one_process = _logits(runs["single"] / "adapter", ids)
    untrained = _logits(None, ids)
    assert torch.equal(final, from_checkpoint)  # the last checkpoint is the final adapter
    assert torch.allclose(final, one_process, atol=3e-2), (final - one_process).abs().max()
    assert (final - untrained).abs().max() > 10 * (final - one_process).abs().max()  # training moved them


def test_lora_under_fsdp_trains_like_one_process(tmp_path):
    args = ("--method", "lora", "--precision", "bf16-mixed", "--max-steps", "4", "--save-steps", "4",
            "--no-progress")
    sharded, single = tmp_path / "fsdp", tmp_path / "single"
    proc = _run(_two_ranks_cmd(sharded, *args))
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = _run(_one_rank_cmd(single, *args, "--grad-accum", "4"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    a, b = _losses(sharded), _losses(single)
    assert len(a) == 4 and max(abs(x - y) for x, y in zip(a, b)) < 1e-3, (a, b)
    assert a[-1] < a[0]
    assert (sharded / "adapter" / "adapter_model.safetensors").exists()


def test_sigterm_on_two_ranks_then_the_same_command_resumes_to_the_same_loss(runs, tmp_path):
    out = tmp_path / "run"
    cmd = _two_ranks_cmd(out, "--max-steps", str(STEPS), "--save-steps", "1000", "--data-eval-fraction", "0.0525",
                         "--no-progress")
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                proc.send_signal(signal.SIGTERM)  # to torchrun, which forwards it to both workers
                break
            time.sleep(0.01)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert len(saved) == 1 and 2 <= saved[0] < STEPS, (saved, err[-3000:])
    assert "preempted at step" in err
    assert not (out / "summary.json").exists()

    again = _run(cmd)
    assert again.returncode == 0, again.stderr[-4000:]
    s = _summary(out)
    assert s["resumed_from_step"] == saved[0] and s["steps_this_run"] == STEPS - saved[0]
    assert [h["to_step"] for h in s["history"]] == [saved[0], STEPS]  # both lifetimes are on record
    assert _losses(out) == pytest.approx(_losses(runs["fsdp"]), abs=1e-4)  # same ranks and shards: exact resume

    # a finished run is left alone by the same command
    before = (out / "summary.json").read_bytes()
    third = _run(cmd)
    assert third.returncode == 0 and "already complete: 6 of 6 steps" in third.stdout
    assert (out / "summary.json").read_bytes() == before


def test_an_fsdp_checkpoint_resumes_on_one_process(runs, tmp_path):
    out = tmp_path / "resume"
    out.mkdir()
    shutil.copytree(runs["fsdp"] / "checkpoint-3", out / "checkpoint-3")
    shutil.copy(runs["fsdp"] / "metrics.jsonl", out / "metrics.jsonl")
    proc = _run(_one_rank_cmd(out, *COMMON, "--grad-accum", "4"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = _summary(out)
    assert s["resumed_from_step"] == 3 and s["world_size"] == 1
    assert any("optimizer moments restart" in n for n in s["notes"])  # said, not hidden
    # the weights resumed: step 4 continues from the trained adapter, far below an untrained start
    assert _losses(out)[3] < _losses(runs["fsdp"])[0] - 0.1


def test_the_toy_fsdp_example_trains_under_gpuplan_launch_on_this_machine(tmp_path):
    out = tmp_path / "launched"
    env = {**_env(), "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1", "HOME": str(tmp_path)}  # launch records under HOME
    proc = subprocess.run(
        [sys.executable, "-m", "planner.cli", "launch", str(TOY), "--target", "local", "--infra", "direct",
         "--max-steps", "3", "--output-dir", str(out), "-y"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    s = _summary(out)
    assert s["steps"] == 3 and s["spec"]["parallel"] == "fsdp" and s["spec"]["method"] == "qlora"
    assert s["world_size"] == 2  # no GPU here: launch ran the job's 2 ranks as CPU processes (gloo), FSDP for real
    assert (out / "adapter" / "adapter_model.safetensors").exists()


def test_full_fine_tuning_under_fsdp_trains_like_one_process_and_saves_the_whole_model(tmp_path):
    args = ("--method", "full", "--precision", "fp32", "--optimizer", "adamw", "--learning-rate", "0.001",
            "--max-steps", "3", "--save-steps", "3", "--no-progress")
    sharded, single = tmp_path / "fsdp", tmp_path / "single"
    proc = _run(_two_ranks_cmd(sharded, *args))
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = _run(_one_rank_cmd(single, *args, "--grad-accum", "4"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    a, b = _losses(sharded), _losses(single)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
    from safetensors.torch import load_file

    saved = load_file(str(next((sharded / "model").glob("*.safetensors"))))
    reference = load_file(str(next((single / "model").glob("*.safetensors"))))
    assert set(saved) == set(reference) and len(saved) > 10
    assert max(float((saved[k].float() - reference[k].float()).abs().max()) for k in saved) < 1e-3
