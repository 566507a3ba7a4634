"""The memory and throughput models against values computed by hand from their definitions."""
from __future__ import annotations

import dataclasses

import pytest

from planner import memory as M
from planner import throughput as T
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


def test_full_bf16_adamw_holds_2_bytes_weights_2_gradients_4_optimizer_per_parameter():
    # No activations to speak of at 1 token: the peak is the optimizer step, with every gradient held.
    mem = M.estimate_memory(ARCH, spec(seq_len=1, batch_size=1), get_gpu("A100"), 1)
    b = mem.breakdown_gib
    assert b["weights"] == pytest.approx(round(2 * TOTAL / GIB, 3), abs=1e-3)
    assert b["gradients"] == pytest.approx(round(2 * TOTAL / GIB, 3), abs=1e-3)
    assert b["optimizer"] == pytest.approx(round(4 * TOTAL / GIB, 3), abs=1e-3)


def test_mixed_precision_keeps_fp32_masters_and_16_bit_working_copies():
    mem = M.estimate_memory(ARCH, spec(precision="bf16-mixed"), get_gpu("A100"), 1)
    assert mem.breakdown_gib["weights"] == pytest.approx(round((4 + 2) * TOTAL / GIB, 3), abs=1e-3)


def test_qlora_weights_are_nf4_on_linear_layers_and_16_bit_elsewhere():
    mem = M.estimate_memory(ARCH, spec(method="qlora", double_quant=True), get_gpu("A100"), 1)
    expected = (2 * LINEAR_PER_LAYER * M.NF4_DQ_BITS / 8 + (EMBED + LM_HEAD + NORMS) * 2) / GIB
    assert mem.breakdown_gib["weights"] == pytest.approx(round(expected, 3), abs=1e-3)


def test_logits_cost_ten_bytes_per_element_and_a_chunked_loss_about_three():
    tokens, vocab = 2 * 128, 1000
    full = M.estimate_memory(ARCH, spec(), get_gpu("A100"), 1).breakdown_gib["logits"]
    chunked = M.estimate_memory(ARCH, spec(chunked_loss=True), get_gpu("A100"), 1).breakdown_gib["logits"]
    assert full == pytest.approx(round(tokens * vocab * 10 / GIB, 3), abs=1e-3)
    assert chunked == pytest.approx(round(tokens * vocab * (2 + 8 / 8) / GIB, 3), abs=1e-3)


def test_checkpointing_keeps_one_hidden_state_per_layer_plus_one_layer_in_flight():
    s = spec(gradient_checkpointing=True)
    tokens = 2 * 128
    per_layer = M.layer_activation_bytes(ARCH, s, tokens, 128, 2)
    expected = 2 * (2 * 64 * tokens) + per_layer + (4 + 2) * 64 * tokens
    assert M.activation_bytes_total(ARCH, s, tokens, 128, 2) == pytest.approx(expected)
    no_ckpt = M.activation_bytes_total(ARCH, spec(), tokens, 128, 2)
    assert no_ckpt == pytest.approx(2 * per_layer + (4 + 2) * 64 * tokens)


def test_full_layer_activations_match_the_itemised_count():
    # full fine-tuning, sdpa, 16-bit: norms 2 x 6h, attention 4 q_dim (q,k,v,out) + 2h (qkv input) + 2 q_dim
    # (o input), gated MLP 3 x 2 I + 2h (gate/up input) + 2 I (down input)
    h, q, inter = 64, 64, 128
    per_token = 2 * 6 * h + (4 * 2 * q + 2 * h + 2 * q) + (3 * 2 * inter + 2 * h + 2 * inter)
    got = M.layer_activation_bytes(ARCH, spec(), 256, 128, 2) / M.CAL.activation_scale
    assert got == pytest.approx(per_token * 256)


def test_eager_attention_adds_the_score_matrix():
    sdpa = M.layer_activation_bytes(ARCH, spec(), 256, 128, 2)
    eager = M.layer_activation_bytes(ARCH, spec(attention="eager"), 256, 128, 2)
    assert eager - sdpa == pytest.approx(6 * 2 * 4 * 128 * 128 * M.CAL.activation_scale)


def test_fsdp_shards_weights_gradients_and_optimizer_across_gpus():
    one = M.estimate_memory(ARCH, spec(parallel="fsdp", seq_len=1, batch_size=1), get_gpu("A100"), 1).breakdown_gib
    four = M.estimate_memory(ARCH, spec(parallel="fsdp", seq_len=1, batch_size=1), get_gpu("A100"), 4).breakdown_gib
    assert four["optimizer"] == pytest.approx(one["optimizer"] / 4, abs=2e-3)
    assert four["gradients"] == pytest.approx(one["gradients"] / 4, abs=2e-3)
    # own shard plus two gathered layers
    w = 2 * TOTAL
    assert four["weights"] == pytest.approx(round((w / 4 + 2 * w / 2) / GIB, 3), abs=2e-3)


def test_paged_8bit_optimizer_states_are_not_counted_in_the_peak():
    mem = M.estimate_memory(ARCH, spec(optimizer="paged-adamw-8bit"), get_gpu("A100"), 1)
    assert mem.breakdown_gib["optimizer"] == 0.0


def test_breakdown_sums_to_peak_allocated_and_reserved_adds_fragmentation():
    mem = M.estimate_memory(ARCH, spec(method="lora"), get_gpu("L4"), 1)
    assert sum(mem.breakdown_gib.values()) == pytest.approx(mem.peak_allocated_gib, abs=5e-3)
    assert mem.peak_reserved_gib == pytest.approx(mem.peak_allocated_gib * M.CAL.reserved_ratio, abs=5e-3)
    assert mem.headroom_gib == pytest.approx(mem.capacity_gib - mem.peak_reserved_gib - M.CAL.cuda_context_gib,
                                             abs=5e-3)


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
