"""The simulated step counts exactly the bytes the same step allocates for real, and runs the real QLoRA layers."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("bitsandbytes")

import torch  # noqa: E402

from planner.estimator.simulate.build import build_model, hf_config_values  # noqa: E402
from planner.estimator.simulate.moments import analyse  # noqa: E402
from planner.estimator.simulate.step import quant_state_tensors, run_step  # noqa: E402
from train.spec import JobSpec  # noqa: E402


def _step(spec: JobSpec, device: str, layers: int | None = None):
    torch.manual_seed(0)
    _lm, loss_model, precision, _notes = build_model(spec, hf_config_values(spec.model), layers, False, device=device)
    rec = run_step(spec, loss_model, precision, device=device)
    return rec, analyse(rec.tracker.trace.events, rec.categories, rec.excluded)


# The trainer's tiny smoke-llama (hidden 64, 2 layers). AdamW-8bit is left out: bitsandbytes' CPU optimizer
# kernels allocate other temporaries than its CUDA (and meta) ones, so CPU is not the reference there.
@pytest.mark.parametrize("method,optimizer,precision,checkpointing", [
    ("full", "adamw", "bf16", False),
    ("lora", "adamw", "bf16-mixed", True),
    ("lora", "sgd", "fp32", False),
])
def test_meta_peak_equals_the_bytes_the_same_step_allocates_on_real_cpu_tensors(
        method: str, optimizer: str, precision: str, checkpointing: bool) -> None:
    spec = JobSpec(model="smoke-llama", method=method, optimizer=optimizer, precision=precision,
                   gradient_checkpointing=checkpointing, seq_len=64, batch_size=2, grad_accum=2)
    meta, meta_mem = _step(spec, "meta")
    real, real_mem = _step(spec, "cpu")
    # exact: same storages, same 512-byte rounding, same order of frees
    assert meta.tracker.trace.peak.bytes == real.tracker.trace.peak.bytes > 0
    assert meta_mem.peak.phase == real_mem.peak.phase
    assert meta_mem.peak.breakdown == real_mem.peak.breakdown
    assert meta_mem.reserved == real_mem.reserved
    assert {p: m.allocated for p, m in meta_mem.moments.items()} == {p: m.allocated for p, m in real_mem.moments.items()}


def test_lora_peak_at_a_large_vocabulary_is_the_first_backward_op_of_the_loss_at_12_bytes_a_logit() -> None:
    spec = JobSpec(model="Qwen/Qwen2.5-0.5B", method="lora", optimizer="adamw", precision="bf16",
                   gradient_checkpointing=True, seq_len=2048, batch_size=2)
    _rec, mem = _step(spec, "meta", layers=2)
    assert mem.peak.phase == "loss_backward"
    assert mem.peak.op.startswith("_log_softmax_backward_data")
    # bf16 logits (2) + fp32 upcast (4) saved log-softmax (4) ... at the peak: 12 B per logit element live
    # (fp32 log-softmax, fp32 grad of nll_loss, fp32 output), plus the bf16 logits' share
    logits = 2 * 2048 * 151936
    assert 12 * logits <= mem.peak.breakdown["logits"] <= 14.5 * logits


def test_qlora_simulation_runs_bitsandbytes_linear4bit_with_4bit_storage() -> None:
    import bitsandbytes as bnb

    spec = JobSpec(model="Qwen/Qwen2.5-0.5B", method="qlora", seq_len=128, double_quant=True)
    lm, loss_model, precision, _ = build_model(spec, hf_config_values(spec.model), 2, False)
    layer = loss_model.decoder.layers[0]
    q = layer.self_attn.q_proj
    assert isinstance(q.base_layer, bnb.nn.Linear4bit)
    assert type(q.base_layer.weight).__name__ == "Params4bit"
    w = q.base_layer.weight
    # packed NF4: two weights per byte, uint8 storage
    assert w.dtype == torch.uint8 and w.numel() == 896 * 896 // 2
    # double quantization: one 8-bit absmax per 64 weights, one fp32 constant per 256 absmax
    qs = w.quant_state
    assert qs.absmax.dtype == torch.uint8 and qs.absmax.numel() == 896 * 896 // 64
    assert qs.state2.absmax.dtype == torch.float32
    assert qs.state2.absmax.numel() == -(-(896 * 896 // 64) // 256)
    # prepare_model_for_kbit_training cast the non-quantized weights to fp32; PEFT adapters are fp32
    assert loss_model.head.weight.dtype == torch.float32
    assert q.lora_A["default"].weight.dtype == torch.float32
    assert precision.autocast_dtype == "bfloat16"
    rec = run_step(spec, loss_model, precision)
    mem = analyse(rec.tracker.trace.events, rec.categories, rec.excluded)
    four_bit = sum(m.base_layer.weight.untyped_storage().nbytes() for m in loss_model.decoder.modules()
                   if hasattr(m, "base_layer") and isinstance(m.base_layer, bnb.nn.Linear4bit))
    stats = sum(t.untyped_storage().nbytes() for t in quant_state_tensors(loss_model))
    assert four_bit > 0 and stats > 0
    # what the tracker counts as weights includes the 4-bit bytes and their quantization state
    assert mem.moments["setup"].breakdown["weights"] >= four_bit + stats
    assert rec.categories and mem.peak.allocated > mem.moments["setup"].allocated


@pytest.mark.slow
@pytest.mark.parametrize("method,optimizer,precision", [("qlora", "paged-adamw-8bit", "bf16"),
                                                        ("full", "adamw", "bf16-mixed")])
def test_two_and_four_layers_extrapolated_per_phase_equal_the_full_depth_simulation(
        method: str, optimizer: str, precision: str) -> None:
    from planner.estimator.simulate import simulate_memory

    spec = JobSpec(model="meta-llama/Llama-3.2-1B", method=method, optimizer=optimizer, precision=precision,
                   seq_len=2048, grad_accum=2)
    fast = simulate_memory(spec, "A100", 1, use_cache=False)
    full = simulate_memory(spec, "A100", 1, full_depth=True, use_cache=False)
    assert fast["estimator"]["extrapolated"] and not full["estimator"]["extrapolated"]
    assert fast["peak_allocated_gib"] == pytest.approx(full["peak_allocated_gib"], abs=0.002)
    assert fast["peak_moment"] == full["peak_moment"]
    # reserved memory is extrapolated too: within 5% (the allocator's segments do not grow exactly per layer)
    assert fast["peak_reserved_gib"] == pytest.approx(full["peak_reserved_gib"], rel=0.05)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_measured_step_is_a_steady_state_one_whose_forward_already_holds_the_optimizer_states(
        optimizer: str) -> None:
    # the trainer's second and later steps: AdamW's two moments (SGD's momentum buffer) live from the start
    spec = JobSpec(model="smoke-llama", method="full", optimizer=optimizer, precision="bf16",
                   seq_len=64, batch_size=2)
    rec, mem = _step(spec, "meta")
    fwd = mem.moments["forward"].breakdown["optimizer"]
    per_param = 2 if optimizer == "adamw" else 1
    assert per_param * rec.trainable_bytes <= fwd < (per_param + 1) * rec.trainable_bytes
    assert mem.peak.breakdown["optimizer"] == fwd


def test_a_qlora_simulation_leaves_real_4bit_quantization_working_in_the_same_process() -> None:
    """bitsandbytes caches double quantization's code map on the device of its first use: a simulation on meta
    must not leave a meta tensor there for the trainer (or any later quantization) to trip over."""
    import bitsandbytes as bnb

    spec = JobSpec(model="Qwen/Qwen2.5-0.5B", method="qlora", seq_len=128, double_quant=True)
    build_model(spec, hf_config_values(spec.model), 2, False)
    lin = bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.bfloat16, compress_statistics=True,
                            quant_type="nf4").to("cpu")
    assert lin.weight.bnb_quantized and lin.weight.device.type == "cpu"
