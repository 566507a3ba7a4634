"""The memory and throughput models against values computed by hand from their definitions."""
from __future__ import annotations

import dataclasses

import pytest

from planner.estimator import memory as M
from planner.estimator import throughput as T
from planner.gpus import get_gpu
from planner.models import ModelArch
from train.spec import spec_from_dict

GIB = 2**30

# A small Llama-shaped model with round numbers: everything below can be checked on paper.
ARCH = ModelArch(name="paper-llama", model_type="llama", vocab_size=1000, hidden_size=64, num_layers=2, num_heads=4,
                 num_kv_heads=2, head_dim=16, intermediate_size=128, gated_mlp=True, tie_embeddings=False,
                 max_position_embeddings=4096)
# per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up/down 64x128 x3 = 4096+2048+2048+4096+24576 = 36864
LINEAR_PER_LAYER = 36864
EMBED = LM_HEAD = 64 * 1000
NORMS = 2 * 2 * 64 + 64  # two RMSNorms per layer, plus the final norm
TOTAL = 2 * LINEAR_PER_LAYER + EMBED + LM_HEAD + NORMS


def spec(**kw):
    base = {"model": "paper-llama", "method": "full", "seq_len": 128, "batch_size": 2, "grad_accum": 1,
            "gradient_checkpointing": False, "optimizer": "adamw", "precision": "bf16", "lora_dropout": 0.0}
    return spec_from_dict(base | kw)


def test_the_paper_model_has_the_counted_parameters():
    assert ARCH.total_params() == TOTAL
    assert ARCH.quantized_params() == 2 * LINEAR_PER_LAYER
    assert ARCH.lora_params(8, "all-linear") == 2 * 8 * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 3 * (64 + 128))


def test_nf4_with_double_quantization_is_4_127_bits_per_weight():
    assert M.NF4_DQ_BITS == pytest.approx(4.127, abs=1e-3)
    assert M.NF4_BITS == 4.5


def moment(spec_, name, world=1, **kw):
    """The named moment's parts, in bytes (the largest of that name)."""
    ms = [m for m in M.moments(ARCH, spec_, world, **kw) if m.name == name]
    return max(ms, key=lambda m: m.allocated).parts


TOKENS = 2 * 128
WORKSPACE = 64 * 2**20  # cuBLAS workspace, counted in every moment's overhead
# one full-fine-tuning layer's saved bytes per token (sdpa, bf16), itemised:
#   norms 2 x (4 fp32 upcast + 2 normalised) x h; attention q and out 2 x 2 x q_dim, k and v at their grouped
#   width 2 x 2 x kv_dim (SDPA enable_gqa, transformers 5), fp32 logsumexp 4 x heads (o_proj reads the saved
#   output: the fused kernels' layout needs no contiguous copy) + q/k/v's input 2 h;
#   MLP gate, SiLU out, up 3 x 2 I + gate/up input 2 h + down input 2 I
FULL_LAYER_PER_TOKEN = 2 * 6 * 64 + (2 * 2 * 64 + 2 * 2 * 32 + 4 * 4 + 2 * 64) + (3 * 2 * 128 + 2 * 64 + 2 * 128)
# one layer's backward transients per token: max(MLP 3 x 2 I, attention 3 x 2 q_dim + fp32 dq 4 q_dim + 4 heads)
# + the residual stream's gradient in and out (2 x 2 h)
TRANSIENT_PER_TOKEN = max(3 * 2 * 128, 3 * 2 * 64 + 4 * 64 + 4 * 4) + 2 * 2 * 64
TAIL = (4 + 2 + 2) * 64 * TOKENS  # final norm's fp32 upcast and output, lm_head input, the loss's label gather


def test_the_full_layer_saves_the_itemised_bytes():
    assert FULL_LAYER_PER_TOKEN == 2448
    assert M.layer_activation_bytes(ARCH, spec(), TOKENS, 128, 2) == FULL_LAYER_PER_TOKEN * TOKENS


def test_loss_backward_holds_every_saved_activation_and_12_bytes_per_logit():
    p = moment(spec(), "loss_backward")
    assert p["activations"] == 2 * FULL_LAYER_PER_TOKEN * TOKENS + TAIL
    # fp32 log-softmax saved + fp32 grad from nll_loss + fp32 grad_input of log-softmax backward
    assert p["logits"] == 12 * TOKENS * 1000
    assert p["gradients"] == 0  # one micro-batch per step: no gradient exists yet
    assert p["weights"] == 2 * TOTAL and p["optimizer"] == 4 * TOTAL and p["overhead"] == WORKSPACE


def test_a_chunked_loss_holds_one_eighth_of_the_logits_work():
    assert moment(spec(chunked_loss=True), "loss_backward")["logits"] == 12 * TOKENS * 1000 / 8


def test_layer_recompute_holds_checkpointed_inputs_one_layer_and_its_backward_and_the_last_gradients():
    p = moment(spec(gradient_checkpointing=True), "layer_recompute")
    inputs = 2 * 2 * 64 * TOKENS  # L x bf16 residual stream per token
    assert p["activations"] == inputs + FULL_LAYER_PER_TOKEN * TOKENS + TRANSIENT_PER_TOKEN * TOKENS
    # the lm_head's and final norm's gradients exist, plus the gradient of the layer being recomputed (its
    # linears and two norms)
    assert p["gradients"] == 2 * (LM_HEAD + 64) + 2 * (LINEAR_PER_LAYER + 2 * 64)


def test_layer_backward_without_checkpointing_holds_every_layers_saved_set_and_one_layers_transients():
    p = moment(spec(), "layer_backward")
    # the lm_head's input and the final norm's tensors are gone; every layer's saved set is still there
    assert p["activations"] == 2 * FULL_LAYER_PER_TOKEN * TOKENS + TRANSIENT_PER_TOKEN * TOKENS
    assert p["logits"] == 0


def test_backward_end_of_a_full_fine_tune_holds_every_gradient_including_the_embedding():
    p = moment(spec(seq_len=1, batch_size=1), "backward_end")
    assert p["gradients"] == 2 * TOTAL
    opt = moment(spec(seq_len=1, batch_size=1), "optimizer_step")
    assert opt["gradients"] == 2 * TOTAL and opt["activations"] == 0 and opt["logits"] == 0


def test_the_peak_is_the_largest_moment_and_names_it():
    llama = dataclasses.replace(ARCH, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
                                num_kv_heads=8, head_dim=128, vocab_size=128256)
    cases = {
        # long context, 128k vocabulary: the loss's fp32 logits dominate
        "loss_backward": (llama, spec(method="qlora", seq_len=8192, batch_size=1, gradient_checkpointing=True,
                                      optimizer="paged-adamw-8bit")),
        # full fine-tune at short context: every gradient + the optimizer states
        "backward_end": (llama, spec(seq_len=256, batch_size=1, gradient_checkpointing=True)),
        # a small vocabulary with eager attention at long context: one layer's s x s scores in recompute
        "layer_recompute": (ARCH, spec(method="lora", attention="eager", seq_len=2048, batch_size=1,
                                       gradient_checkpointing=True)),
        # a foreach (non-fused) AdamW allocates two parameter-size temporaries at the step (litgpt)
        "optimizer_step": (ARCH, spec(stack="litgpt", seq_len=1, batch_size=1)),
    }
    for expected, (arch, s) in cases.items():
        mem = M.estimate_memory(arch, s, get_gpu("B200"), 1)
        assert mem.peak_moment == expected, (expected, mem.moments_gib)
        assert max(mem.moments_gib.values()) == mem.peak_allocated_gib


def test_mixed_precision_saves_16_bit_copies_of_the_weights_for_backward():
    mixed = moment(spec(precision="bf16-mixed"), "loss_backward")
    linear_copies = 2 * 2 * LINEAR_PER_LAYER  # every block linear's bf16 cast, saved by its matmul
    assert mixed["weights"] == 4 * TOTAL + linear_copies + 2 * LM_HEAD


def test_qlora_weights_are_nf4_linears_and_fp32_elsewhere_after_kbit_preparation():
    s = spec(method="qlora", double_quant=True, optimizer="paged-adamw-8bit")
    expected = 2 * LINEAR_PER_LAYER * M.NF4_DQ_BITS / 8 + (EMBED + LM_HEAD + NORMS) * 4
    assert moment(s, "optimizer_step")["weights"] == pytest.approx(expected)
    # under autocast the frozen fp32 lm_head is cast to bf16 on every call, and the cast is saved for backward
    assert moment(s, "loss_backward")["weights"] == pytest.approx(expected + 2 * LM_HEAD)


def test_qlora_residual_stream_is_fp32_after_kbit_preparation_so_checkpointed_inputs_cost_4_bytes():
    s = spec(method="qlora", gradient_checkpointing=True, optimizer="paged-adamw-8bit")
    assert moment(s, "loss_backward")["activations"] == 2 * 4 * 64 * TOKENS + TAIL
    tt = spec(method="qlora", gradient_checkpointing=True, optimizer="paged-adamw-8bit", stack="torchtune")
    assert moment(tt, "loss_backward")["activations"] == 2 * 2 * 64 * TOKENS + TAIL


def _with_mechanism(monkeypatch, **change):
    from planner.estimator import stacks

    base = stacks.STACK_MECHANISMS["gpuplan"]
    monkeypatch.setitem(stacks.STACK_MECHANISMS, "axolotl", dataclasses.replace(base, name="axolotl", **change))
    M._TERMS.clear()


@pytest.mark.parametrize("change,part,moment_name,delta", [
    # k-bit preparation's fp32 casts: 2 extra bytes per non-quantized weight
    ({"kbit_prep_fp32": False}, "weights", "optimizer_step", -(EMBED + LM_HEAD + NORMS) * 2),
    # PEFT's fp32 adapters: 2 bytes per LoRA parameter, in the adapter and in its gradient
    ({"adapter_bytes": 2}, "adapter", "optimizer_step", -ARCH.lora_params(16, "all-linear") * 2),
    ({"adapter_bytes": 2}, "gradients", "optimizer_step", -ARCH.lora_params(16, "all-linear") * 2),
    # autocast's uncached bf16 copy of the frozen fp32 lm_head
    ({"autocast_qlora": False}, "weights", "loss_backward", -2 * LM_HEAD),
    # the loss's bytes per logit element
    ({"loss_bytes_per_logit": 16.0}, "logits", "loss_backward", 4 * TOKENS * 1000),
])
def test_a_stack_changes_memory_by_exactly_its_mechanisms_bytes(monkeypatch, change, part, moment_name, delta):
    s = spec(method="qlora", optimizer="adamw-8bit", lora_r=16, lora_targets="all-linear")
    before = moment(s, moment_name)[part]
    _with_mechanism(monkeypatch, **change)
    after = moment(dataclasses.replace(s, stack="axolotl"), moment_name)[part]
    M._TERMS.clear()
    assert after - before == pytest.approx(delta)


def test_a_foreach_adamw_adds_two_parameter_size_temporaries_at_the_step(monkeypatch):
    s = spec(method="qlora", optimizer="adamw", lora_r=16, lora_targets="all-linear")
    before = moment(s, "optimizer_step")["overhead"]
    _with_mechanism(monkeypatch, fused_adamw=False)
    after = moment(dataclasses.replace(s, stack="axolotl"), "optimizer_step")["overhead"]
    M._TERMS.clear()
    assert after - before == 2 * ARCH.lora_params(16, "all-linear") * 4  # fp32 adapters


def test_every_stack_names_its_mechanisms_source():
    from planner.estimator.stacks import STACK_MECHANISMS
    from train.spec import STACKS

    assert set(STACK_MECHANISMS) == set(STACKS)
    assert all(len(m.source) > 20 for m in STACK_MECHANISMS.values())


def test_eager_attention_adds_the_score_matrix():
    sdpa = M.layer_activation_bytes(ARCH, spec(), 256, 128, 2)
    eager = M.layer_activation_bytes(ARCH, spec(attention="eager"), 256, 128, 2)
    scores = 6 * 2 * 4 * 128 * 128  # fp32 softmax + its bf16 cast, batch 2, 4 heads, s x s
    # eager repeats k and v to every head (repeat_kv; SDPA reads the 2 kv heads in place) and o_proj reads a
    # contiguous copy of probs @ v, whose layout is (batch, heads, seq, dim)
    per_token = 2 * 2 * (64 - 32) + 2 * 64
    assert eager - sdpa == scores + per_token * 256


def test_fsdp_shards_weights_gradients_and_optimizer_across_gpus():
    s = spec(parallel="fsdp", seq_len=1, batch_size=1)
    one, four = moment(s, "optimizer_step", 1), moment(s, "optimizer_step", 4)
    assert four["optimizer"] == pytest.approx(one["optimizer"] / 4)
    assert four["gradients"] == pytest.approx(one["gradients"] / 4)
    # own shard plus two gathered layers (current + prefetch)
    layer = (2 * TOTAL - 2 * (EMBED + LM_HEAD)) / 2
    assert four["weights"] == pytest.approx(2 * TOTAL / 4 + 2 * layer)
    # while a layer runs backward its unsharded gradient waits for the reduce-scatter
    assert moment(s, "layer_backward", 4)["overhead"] == pytest.approx(WORKSPACE + 2 * TOTAL / 2)


def test_ddp_holds_flat_gradient_buckets_from_the_start():
    s = spec(seq_len=1, batch_size=1)
    assert moment(s, "loss_backward", 2)["overhead"] == WORKSPACE + 2 * TOTAL


def test_paged_8bit_optimizer_states_are_not_counted_in_the_peak():
    mem = M.estimate_memory(ARCH, spec(optimizer="paged-adamw-8bit"), get_gpu("A100"), 1)
    assert mem.breakdown_gib["optimizer"] == 0.0


def test_the_caching_allocator_replay_books_512_byte_blocks_in_2_mib_segments():
    from planner.estimator import allocator as A

    assert A.round_size(1) == 512 and A.round_size(513) == 1024
    assert A.segment_size(5 << 20) == 20 << 20  # under 10 MiB: a 20 MiB segment
    assert A.segment_size((11 << 20) + 1) == 12 << 20  # else rounded up to 2 MiB
    # a freed block is reused by a request that fits it; a larger one opens a new segment
    r = A.replay((("alloc", "a", 64 << 20), ("free", "a", 0), ("alloc", "b", 32 << 20), ("alloc", "c", 64 << 20)))
    assert r.peak_allocated == 96 << 20 and r.peak_reserved == 128 << 20 and r.segments == 2


def test_the_losss_fp32_blocks_leave_the_16_bit_logits_segment_cached_reserved_is_14_over_12():
    from planner.estimator import allocator as A

    e = 8192 * 128256
    r = A.replay(A.loss_events(e, upcast=True))
    assert r.peak_allocated == pytest.approx(12 * e, rel=1e-6)
    assert r.peak_reserved == pytest.approx(14 * e, rel=1e-6)  # 1.167: inside the 1.13-1.24 measured (issue 9)
    assert A.loss_fragmentation(e) == pytest.approx(2 * e, rel=1e-6)


def test_breakdown_sums_to_peak_allocated_and_reserved_adds_the_allocators_fragmentation():
    mem = M.estimate_memory(ARCH, spec(method="lora"), get_gpu("L4"), 1)
    assert sum(mem.breakdown_gib.values()) == pytest.approx(mem.peak_allocated_gib, abs=5e-3)
    assert mem.peak_reserved_gib >= mem.peak_allocated_gib
    assert mem.headroom_gib == pytest.approx(mem.capacity_gib - mem.peak_reserved_gib - M.CAL.cuda_context_gib,
                                             abs=5e-3)


def test_fits_is_three_valued_over_the_band():
    from planner.result import MemoryEstimate

    def call(lo, hi, capacity):
        return M.fit_call(MemoryEstimate(10, 10, capacity, {}, band_gib=[lo, hi]))

    ctx = M.CAL.cuda_context_gib
    assert call(9, 12, 12 + ctx) is True  # the high end fits
    assert call(9, 12, 11 + ctx) == "tight"  # the card is inside the band
    assert call(9, 12, 8 + ctx) is False  # not even the low end fits
    assert bool("tight") is True  # JSON consumers testing truthiness read "tight" as fits


def test_flops_per_token_are_6n_for_full_and_4n_plus_adapters_for_lora():
    n = 2 * LINEAR_PER_LAYER + LM_HEAD  # matmul parameters: blocks + lm_head (embedding is a lookup)
    attention = 12 * 2 * 64 * 128
    assert T.model_flops_per_token(ARCH, spec(), 128) == 6 * n + attention
    lora = spec(method="lora", lora_targets="all-linear", lora_r=8)
    assert T.model_flops_per_token(ARCH, lora, 128) == 4 * n + 6 * ARCH.lora_params(8, "all-linear") + attention


def test_recompute_adds_a_second_forward_of_the_blocks():
    s = spec(gradient_checkpointing=True)
    extra = T.hardware_flops_per_token(ARCH, s, 128) - T.model_flops_per_token(ARCH, s, 128)
    assert extra == 2 * (2 * LINEAR_PER_LAYER) + 4 * 2 * 64 * 128


def test_mfu_is_model_flops_times_tokens_per_second_over_peak():
    big = dataclasses.replace(ARCH, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
                              num_kv_heads=8, head_dim=128, vocab_size=128256)
    gpu = get_gpu("H100")
    s = spec(seq_len=2048, batch_size=4)
    tp = T.estimate_throughput(big, s, gpu, 1)
    flops = T.model_flops_per_token(big, s, 2048)
    assert tp.mfu == pytest.approx(flops * tp.tokens_per_s / (989e12), rel=1e-3)
    assert 0.2 < tp.mfu < 0.7  # a physical range for full fine-tuning at 8k tokens per micro-batch


def test_throughput_falls_per_token_when_micro_batches_are_small():
    big = dataclasses.replace(ARCH, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
                              num_kv_heads=8, head_dim=128, vocab_size=128256)
    gpu = get_gpu("A100-80GB")
    small = T.estimate_throughput(big, spec(method="qlora", seq_len=256, batch_size=1), gpu, 1)
    large = T.estimate_throughput(big, spec(method="qlora", seq_len=4096, batch_size=1), gpu, 1)
    assert small.mfu < 0.5 * large.mfu


def test_data_parallel_gpus_add_throughput_with_less_than_perfect_scaling():
    gpu = get_gpu("A100-80GB")
    big = dataclasses.replace(ARCH, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
                              num_kv_heads=8, head_dim=128, vocab_size=128256)
    # With 16 micro-batches per step the compute dominates (a sharded optimizer step alone can scale
    # super-linearly, since each GPU updates 1/8 of the states).
    one = T.estimate_throughput(big, spec(seq_len=2048, grad_accum=16), gpu, 1)
    eight = T.estimate_throughput(big, spec(seq_len=2048, grad_accum=16, parallel="fsdp"), gpu, 8)
    assert 4 * one.tokens_per_s < eight.tokens_per_s < 8 * one.tokens_per_s
    assert 0.5 < eight.scaling_efficiency < 1.0


def test_the_fast_loss_fragmentation_is_the_replay_in_closed_form():
    from planner.estimator import allocator as A

    sizes = [1.0, 3e5, 5.2e6, 5.3e6, 9.3e6, 1.2e7, 3.1e8, 8192 * 128256, 2.46e9, 3.6e9]
    sizes += [5.3e6 + k * 997.3 for k in range(0, 4000, 37)]  # across 512-byte and 2 MiB rounding boundaries
    for e in sizes:
        for upcast in (True, False):
            assert A.loss_fragmentation(e, upcast) == A.loss_fragmentation_replayed(e, upcast), (e, upcast)


def test_fsdp1_mixed_precision_gathers_16_bit_layers_instead_of_fp32_layers_and_autocast_copies(monkeypatch):
    """Our trainer wraps a mixed-precision full fine-tune in FSDP1 with MixedPrecision(param_dtype=bf16)
    (train/shard.py), as accelerate does for HF Trainer: same weights at the peak. Without that policy the
    fp32 layers would be gathered and autocast would cast (and keep) their 16-bit copies."""
    from planner.estimator import stacks

    s = spec(precision="bf16-mixed", parallel="fsdp", seq_len=1, batch_size=1)
    ours = moment(s, "loss_backward", 4)
    hf = moment(dataclasses.replace(s, stack="hf-trainer"), "loss_backward", 4)
    assert ours["weights"] == pytest.approx(hf["weights"])
    plain = dataclasses.replace(stacks.STACK_MECHANISMS["gpuplan"], fsdp_flat_fp32=False)
    monkeypatch.setitem(stacks.STACK_MECHANISMS, "gpuplan", plain)
    monkeypatch.setattr(M, "_TERMS", {})  # the terms are cached by spec: count afresh with the patched stack
    without = moment(s, "loss_backward", 4)
    layer_fp32 = (4 * TOTAL - 4 * (EMBED + LM_HEAD)) / 2
    # two gathered layers at 4 B instead of 2 B per parameter; autocast copies of the lm_head and of every
    # block's linears (saved for backward without checkpointing); the root unit (embedding + lm_head),
    # unsharded through forward and backward, at 4 B vs 2 B on the 3 of 4 ranks' shares this rank does not own
    root = (4 - 2) * (EMBED + LM_HEAD) * 3 / 4
    assert without["weights"] - ours["weights"] == pytest.approx(
        2 * layer_fp32 / 2 + 2 * LM_HEAD + 2 * 2 * LINEAR_PER_LAYER + root)


def test_deepspeed_zero3_adds_its_buckets_and_fp32_master_weights():
    s = spec(parallel="zero3", seq_len=1, batch_size=1)  # full fine-tune, pure bf16
    ours = moment(s, "optimizer_step", 4)
    ds = moment(dataclasses.replace(s, stack="hf-trainer"), "optimizer_step", 4)
    assert ds["weights"] - ours["weights"] == pytest.approx(1.9 * 64 * 64 * 2)  # reduce + prefetch buckets
    assert ds["optimizer"] - ours["optimizer"] == pytest.approx(4 * TOTAL / 4)  # fp32 masters, sharded


# --- mechanisms found by checking the analytic count against the simulator (issue 9) ---------------------
def test_fsdp_holds_the_root_unit_unsharded_from_forward_to_the_end_of_backward():
    s = spec(parallel="fsdp", seq_len=1, batch_size=1)  # full fine-tune, pure bf16: no autocast copies
    during = moment(s, "loss_backward", 4)["weights"]
    after = moment(s, "optimizer_step", 4)["weights"]
    # the embedding and lm_head (the root: everything outside the wrapped decoder layers) on the 3 of 4 shares
    # this rank does not own
    assert during - after == pytest.approx(2 * (EMBED + LM_HEAD) * 3 / 4)
    # torchtune shards tok_embeddings and output as units of their own: nothing held
    tt = dataclasses.replace(s, stack="torchtune")
    assert moment(tt, "loss_backward", 4)["weights"] == pytest.approx(moment(tt, "optimizer_step", 4)["weights"])


def test_a_full_fine_tunes_fsdp_root_gradient_is_unsharded_until_the_end_of_backward():
    s = spec(parallel="fsdp", seq_len=1, batch_size=1)
    ms = [m for m in M.moments(ARCH, s, 4) if m.name == "backward_end"]
    end = max(m.parts["gradients"] for m in ms)
    layers = 2 * LINEAR_PER_LAYER + 2 * 2 * 64
    # this rank's share of every gradient + the root's (head, final norm, embedding) on the other 3 shares
    assert end == pytest.approx(2 * (layers + EMBED + LM_HEAD + 64) / 4 + 2 * (EMBED + LM_HEAD + 64) * 3 / 4)


def test_a_logit_soft_cap_adds_the_bytes_its_tanh_saves():
    capped = dataclasses.replace(ARCH, logit_softcap=30.0)
    elements = TOKENS * 1000
    for stack, extra in (("gpuplan", 4), ("hf-trainer", 2)):  # fp32 logits in our loss; 16-bit in the model
        s = spec(method="lora", stack=stack)
        plain = max((m for m in M.moments(ARCH, s, 1) if m.name == "loss_backward"), key=lambda m: m.allocated)
        cap = max((m for m in M.moments(capped, s, 1) if m.name == "loss_backward"), key=lambda m: m.allocated)
        assert cap.parts["logits"] - plain.parts["logits"] == extra * elements


def test_torchtunes_2024_recipes_kept_the_fp32_logits_through_backward():
    s = spec(method="lora", stack="torchtune-2024")
    assert moment(s, "loss_backward")["logits"] == 16 * TOKENS * 1000
    assert moment(dataclasses.replace(s, stack="torchtune"), "loss_backward")["logits"] == 12 * TOKENS * 1000


def test_qlora_mlp_intermediates_follow_the_fp32_stream_that_linear4bit_returns():
    q = spec(method="qlora", precision="bf16")
    assert M.mlp_bytes(q, M.mechanisms(q)) == 4  # k-bit preparation: fp32 norms, so fp32 residual stream
    tt = dataclasses.replace(q, stack="torchtune")
    assert M.mlp_bytes(tt, M.mechanisms(tt)) == 2  # whole model bf16
    # gate, SiLU out and up: 3 x I x (4 - 2) more per token than the bf16 stack's count, at 128 intermediate
    assert M._layer_saved_per_token(ARCH, q, mlp_only=True) - M._layer_saved_per_token(ARCH, tt, mlp_only=True) \
        >= 3 * 128 * 2


def test_autocast_caches_every_trainable_layers_16_bit_copy_until_the_loss_forward_ends():
    s = spec(precision="bf16-mixed", gradient_checkpointing=True, seq_len=1, batch_size=1)
    fwd, bwd = moment(s, "loss_forward"), moment(s, "loss_backward")
    # fp32 master weights; at the loss's forward autocast still holds the bf16 cast of every linear of every
    # layer (cached: leaves that require grad), after it only the lm_head's copy that the matmul saved
    assert fwd["weights"] - bwd["weights"] == 2 * 2 * LINEAR_PER_LAYER
    # LoRA's frozen weights are not cached (no grad): no such moment
    assert not [m for m in M.moments(ARCH, spec(method="lora", precision="bf16-mixed", gradient_checkpointing=True), 1)
                if m.name == "loss_forward"]


def test_gemmas_four_norms_a_layer_save_twice_the_norm_bytes():
    four = dataclasses.replace(ARCH, norms_per_layer=4)
    s = spec()
    assert M._layer_saved_per_token(four, s) - M._layer_saved_per_token(ARCH, s) == 2 * 6 * 64


def test_our_lora_under_fsdp_gathers_its_fp32_base_where_accelerate_gathers_16_bit():
    """train/shard.py applies MixedPrecision to full fine-tunes only: a bf16-mixed LoRA job's fp32 base layers are
    gathered in fp32 (and autocast casts them), where accelerate's policy gathers every unit in 16 bits."""
    s = spec(method="lora", precision="bf16-mixed", parallel="fsdp", seq_len=1, batch_size=1)
    ours = moment(s, "loss_backward", 4)["weights"]
    hf = moment(dataclasses.replace(s, stack="hf-trainer"), "loss_backward", 4)["weights"]
    assert ours > hf
