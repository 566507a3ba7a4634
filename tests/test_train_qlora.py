"""The bundled trainer end to end on the CPU: QLoRA (NF4 via bitsandbytes' CPU backend), checkpoints,
preemption and resume, DDP over two gloo processes, and bad-input handling."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "examples" / "smoke.yaml"
STEPS = 40
SUMMARY_KEYS = ("steps", "resumed_from_step", "final_loss", "tokens_per_s", "step_time_s",
                "peak_memory_allocated_gib", "peak_memory_reserved_gib", "gpu", "gpu_count", "spec")


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _train(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", "--no-progress", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in _metrics(out) if "loss" in r]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """The shipped smoke job, uninterrupted (40 QLoRA steps)."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    proc = _train("--config", str(SMOKE), "--output-dir", str(out), "--max-steps", str(STEPS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_bitsandbytes_runs_nf4_and_8bit_adam_on_the_cpu():
    import bitsandbytes as bnb
    import torch

    torch.manual_seed(0)
    lin = bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.bfloat16, compress_statistics=True,
                            quant_type="nf4").to("cpu")  # quantizes on the move to the device
    assert lin.weight.bnb_quantized and lin.weight.dtype == torch.uint8
    x = torch.randn(4, 64, requires_grad=True)
    lin(x).float().pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    p = torch.nn.Parameter(torch.randn(128, 64))
    opt = bnb.optim.AdamW8bit([p], lr=1e-2)
    before = p.detach().clone()
    p.grad = torch.randn_like(p)
    opt.step()
    assert opt.state[p]["state1"].dtype == torch.uint8  # 8-bit optimizer state
    assert not torch.equal(before, p.detach())


def test_smoke_job_trains_and_reports(smoke_run):
    losses = _losses(smoke_run)
    assert len(losses) == STEPS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, (first, last)
    rows = [r for r in _metrics(smoke_run) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["lr"] > 0 for r in rows)
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert all(k in summary for k in SUMMARY_KEYS)
    assert summary["steps"] == STEPS and summary["resumed_from_step"] is None
    assert summary["final_loss"] == pytest.approx(losses[-1], abs=1e-5)
    assert summary["gpu"] is None and summary["gpu_count"] == 0 and summary["peak_memory_allocated_gib"] is None
    assert summary["tokens_per_s"] > 0 and summary["step_time_s"] > 0
    assert summary["spec"]["method"] == "qlora" and summary["spec"]["max_steps"] == STEPS
    assert summary["eval_loss"] is not None and summary["eval_loss"] < losses[0]
    # the last two complete checkpoints are kept, and the adapter is saved
    assert sorted(p.name for p in smoke_run.glob("checkpoint-*")) == ["checkpoint-30", "checkpoint-40"]
    assert (smoke_run / "checkpoint-40" / "COMPLETE").exists()
    assert (smoke_run / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((smoke_run / "adapter" / "adapter_config.json").read_text())["r"] == 8


def test_sigterm_saves_and_the_same_command_resumes_to_the_same_result(smoke_run, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "train", "--no-progress", "--config", str(SMOKE), "--output-dir", str(out),
           "--max-steps", str(STEPS), "--save-steps", "1000"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.005)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-2000:]
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert len(saved) == 1 and 3 <= saved[0] < STEPS
    stopped = saved[0]
    assert not (out / "summary.json").exists()
    # a later, half-written checkpoint (no COMPLETE marker) must not be picked up
    junk = out / f"checkpoint-{stopped + 1}"
    junk.mkdir()
    (junk / "trainable.safetensors").write_bytes(b"garbage")

    again = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == stopped
    assert summary["steps"] == STEPS and summary["steps_this_run"] == STEPS - stopped
    assert [r["step"] for r in _metrics(out) if "loss" in r] == list(range(1, STEPS + 1))
    reference = json.loads((smoke_run / "summary.json").read_text())["final_loss"]
    assert summary["final_loss"] == pytest.approx(reference, abs=0.02)
    assert _losses(out)[stopped] == pytest.approx(_losses(smoke_run)[stopped], abs=0.02)  # the step after resume


def test_adapter_reloads_onto_the_base_and_gives_the_same_logits(tmp_path):
    import torch
    from peft import PeftModel

    from train.model import load_model
    from train.precision import resolve_precision
    from train.recipe import run
    from train.smoke import smoke_model_folder
    from train.spec import load_spec

    torch.set_num_threads(1)
    spec = load_spec(SMOKE, {"output_dir": str(tmp_path / "run"), "max_steps": 4, "save_steps": 100})
    result = run(spec, progress=False, keep_model=True)
    trained = result.model.eval()
    q_proj = trained.get_base_model().model.layers[0].self_attn.q_proj.base_layer
    assert type(q_proj).__name__ == "Linear4bit" and q_proj.weight.quant_type == "nf4"
    assert q_proj.weight.quant_state.nested  # double quantization
    ids = torch.tensor([list(b"What is 2 plus 3?")])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
    precision = resolve_precision(spec, "cpu", False)
    with smoke_model_folder() as source:
        base_spec = load_spec(SMOKE, {"method": "qlora", "lora_r": 8})
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16, device_map={"": "cpu"},
                                                    quantization_config=BitsAndBytesConfig(
                                                        load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                        bnb_4bit_use_double_quant=True,
                                                        bnb_4bit_compute_dtype=torch.bfloat16))
        reloaded = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter")).eval()
        with torch.no_grad():
            fresh_base = load_model(base_spec, source, precision, "cpu").eval()
            untrained = fresh_base(input_ids=ids).logits
            got = reloaded(input_ids=ids).logits
    assert torch.allclose(got.float(), expected.float(), atol=2e-2), (got - expected).abs().max()
    assert not torch.allclose(untrained.float(), expected.float(), atol=2e-2)  # training changed the outputs


def test_packed_examples_do_not_attend_to_each_other():
    import torch

    from train.smoke import build_smoke_model

    torch.manual_seed(0)
    model = build_smoke_model().eval()
    model.config.use_cache = False  # transformers only reads packing from position_ids when there is no KV cache
    a, b = list(b"first example"), list(b"second one")
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([b]), position_ids=torch.arange(len(b))[None]).logits[0]
        packed = model(input_ids=torch.tensor([a + b]),
                       position_ids=torch.tensor([list(range(len(a))) + list(range(len(b)))])).logits[0, len(a):]
        leaky = model(input_ids=torch.tensor([a + b]),
                      position_ids=torch.arange(len(a) + len(b))[None]).logits[0, len(a):]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(leaky, alone, atol=1e-3)


def _torchrun_two(out: Path, *args: str) -> subprocess.CompletedProcess:
    """The smoke job under torchrun as two CPU processes, the way a 2-GPU SkyPilot node would start it."""
    from train.distributed import torchrun_command

    cmd = torchrun_command(str(SMOKE), ["--output-dir", str(out), "--no-progress", *args],
                           env={"SKYPILOT_NUM_GPUS_PER_NODE": "2"}, python=sys.executable)
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=150)


def test_ddp_over_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    proc = _torchrun_two(out, "--max-steps", "6", "--save-steps", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    rows = [r for r in _metrics(out) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 7))
    # each step consumes one micro batch per rank: about twice the single-process tokens
    assert min(r["tokens"] for r in rows) > 1.5 * 256 * 4 * 0.8
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert (out / "checkpoint-6" / "rng_state_1.pt").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", ["missing dataset", "unknown field", "seq_len", "empty dataset", "unknown model"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    out = tmp_path / "out"
    data = REPO / "examples" / "data" / "smoke.jsonl"
    args: list[str] = []
    if case == "missing dataset":
        job = _write(tmp_path / "j.yaml", f"model: smoke-llama\ndata: {{path: {tmp_path}/none.jsonl}}\n")
        expect = "data.path:"
    elif case == "unknown field":
        job = _write(tmp_path / "j.yaml", f"model: smoke-llama\nseq_lenght: 128\ndata: {{path: {data}}}\n")
        expect = "seq_lenght: unknown field; did you mean 'seq_len'?"
    elif case == "seq_len":
        job = _write(tmp_path / "j.yaml", f"model: smoke-llama\ndata: {{path: {data}}}\n")
        args = ["--seq-len", "0"]
        expect = "seq_len: must be greater than 0"
    elif case == "empty dataset":
        empty = _write(tmp_path / "empty.jsonl", "\n")
        job = _write(tmp_path / "j.yaml", f"model: smoke-llama\ndata: {{path: {empty}}}\n")
        expect = "data.path:"
    else:
        job = _write(tmp_path / "j.yaml", f"model: no-such-org/no-such-model\ndata: {{path: {data}}}\n")
        expect = "model: cannot find 'no-such-org/no-such-model'"
    proc = _train("--config", str(job), "--output-dir", str(out), *args, timeout=90)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
