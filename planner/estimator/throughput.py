"""Step time and tokens/s of a fine-tuning job, with every FLOP counted and named.

Model FLOPs per token (llm-foundry's MFU accounting, Kaplan et al. 2020):
- matmul: 6 N for full fine-tuning (forward 2N, backward 4N: activation and weight gradients);
  4 N for LoRA/QLoRA (frozen weights need no weight gradient) plus 6 N_lora for the adapters;
- attention: 12 L q_dim s (QK^T and AV, forward + backward; no causal discount, as llm-foundry);
N counts the matmul parameters a token passes through: active decoder-block weights plus the lm_head
(the input embedding is a lookup, not a matmul).

Hardware FLOPs add what the GPU really does beyond the model: a second forward (2 N + the attention
forward) under gradient checkpointing.

Time per micro-batch = hardware FLOPs / (peak x e_max)       compute at the efficiency large batches reach
                     + L x passes x t_layer                    fixed per-layer cost (launches, small kernels,
                                                               norms, RoPE): this is why MFU falls when a
                                                               micro-batch has few tokens
                     + passes x (QLoRA dequantisation traffic) / bandwidth
Time per step      = grad_accum x micro-batch + optimizer (memory-bound) + exposed communication.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from planner.estimator.counts import arch_counts, lora_counts, trainable_params
from planner.gpus import GPU
from planner.estimator.memory import nf4_bits, optimizer_bytes_per_param, shards, weight_bytes
from planner.models import ModelArch
from planner.result import ThroughputEstimate
from train.spec import JobSpec


@dataclass(frozen=True)
class ThroughputCalibration:
    """Constants fitted on ../shared/data/measurements/published.csv (benchmarks/estimator_accuracy.py)."""

    # Fraction of the GPU's achievable GEMM rate (peak x gpu.gemm_efficiency) that a training step's matmul
    # work reaches at large micro-batches: the rest is non-matmul kernels (norms, RoPE, softmax, SiLU), kernel
    # boundaries and imperfect overlap. llm-foundry's FSDP runs reach 0.51-0.64 MFU on A100 (0.58-0.73 of
    # achievable GEMM); LoRA steps add small adapter matmuls and elementwise work.
    e_max_full: float = 0.70
    e_max_lora: float = 0.62
    # Fixed cost per decoder layer per pass (forward, backward, recompute), seconds: ~25-40 small kernels at
    # ~5-10 us of launch + latency each.
    t_layer_s: float = 2.0e-4
    # LoRA adds ~4 small kernels per targeted module per pass (dropout, A, B, add).
    t_lora_module_s: float = 2.0e-5
    # Achieved fraction of HBM bandwidth for memory-bound kernels (dequantisation, optimizer step).
    bw_efficiency: float = 0.7
    # Fraction of gradient/parameter communication not hidden behind compute: NVLink collectives overlap
    # well; PCIe cards (GeForce without peer-to-peer) stage through host memory and mostly don't.
    comm_exposed_nvlink: float = 0.3
    comm_exposed_pcie: float = 0.8
    # Inter-node bandwidth per GPU, GB/s (one direction): 400 Gb/s per node / 8 GPUs ~ 6 GB/s (p4d) to
    # 3200 Gb/s EFA / 8 = 50 GB/s (p5); a middle value.
    internode_gbs: float = 25.0
    # Host <-> GPU bandwidth for CPU offload, GB/s (PCIe Gen4 x16 in practice).
    host_link_gbs: float = 20.0
    # Host memory bandwidth a CPU optimizer step reaches, GB/s.
    host_mem_gbs: float = 40.0
    # Padding overhead of dynamically padded batches of variable-length examples (b > 1, no packing).
    padding_factor: float = 1.3
    # Per optimizer step, outside the model: data loading, gradient clipping, zero_grad, scheduler, logging,
    # Python. ~30-80 ms in HF Trainer / torchtune loops without CUDA graphs.
    t_step_overhead_s: float = 0.05
    # Memory traffic of the optimizer step relative to the minimum (read w, g, m, v; write w, m, v): PyTorch's
    # default foreach AdamW makes several passes with temporaries (~3x); fused=True approaches 1x.
    optimizer_traffic_factor: float = 3.0
    # torch.compile's speed-up of the model's forward/backward: torchtune's controlled ablation (TT2-2 ->
    # TT2-3, Llama-3.2-3B full fine-tune on A100): 7075 -> 8998 tokens/s = 1.27x.
    compile_speedup: float = 1.27


TCAL = ThroughputCalibration()


def peak_flops(gpu: GPU, precision: str) -> float:
    """Peak dense FLOP/s for the step's matmuls.

    fp32 runs on TF32 tensor cores at half the 16-bit rate on Ampere and later; V100/T4 have no TF32 and
    fall back to CUDA cores (~1/8 of their tensor rate). On GPUs without bf16 (T4, V100) the trainer computes
    in fp16 at the same tensor rate (the plan notes it).
    """
    base = gpu.bf16_tflops * 1e12
    if precision == "fp32":
        return base * (0.5 if gpu.bf16 else 0.125)
    return base


def matmul_params(arch: ModelArch) -> int:
    """Parameters in the matmuls one token passes through (active experts only; lm_head included)."""
    c = arch_counts(arch)
    per_layer = sum(g.weight_params * g.active for g in c.groups)  # norms and biases are not matmuls
    lm_head = arch.vocab_size * arch.hidden_size  # tied or not, the output projection is a matmul
    return per_layer * arch.num_layers + lm_head


def model_flops_per_token(arch: ModelArch, spec: JobSpec, context: int) -> float:
    n = matmul_params(arch)
    q_dim = arch.num_heads * arch.head_dim
    attention = 12 * arch.num_layers * q_dim * context
    if spec.method == "full":
        return 6 * n + attention
    lora = lora_counts(arch, spec.lora_r, spec.lora_targets).params
    return 4 * n + 6 * lora + attention


def hardware_flops_per_token(arch: ModelArch, spec: JobSpec, context: int) -> float:
    flops = model_flops_per_token(arch, spec, context)
    if spec.gradient_checkpointing:
        n_blocks = matmul_params(arch) - arch.vocab_size * arch.hidden_size
        flops += 2 * n_blocks + 4 * arch.num_layers * arch.num_heads * arch.head_dim * context
    return flops


def tokens_per_sample(spec: JobSpec) -> tuple[float, float]:
    """(real tokens, padded tokens) per sample of the micro-batch."""
    s = spec.seq_len
    if spec.packing or spec.mean_example_tokens is None:
        return float(s), float(s)
    real = float(min(spec.mean_example_tokens, s))
    padded = real if spec.batch_size == 1 else min(float(s), real * TCAL.padding_factor)
    return real, padded


def estimate_throughput(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, nodes: int = 1) -> ThroughputEstimate:
    real, padded = tokens_per_sample(spec)
    b = spec.batch_size
    # attention context: packed samples attend within themselves when the mean length is known
    context = min(spec.mean_example_tokens or spec.seq_len, spec.seq_len) if spec.packing else padded
    hw_per_token = hardware_flops_per_token(arch, spec, context)
    peak = peak_flops(gpu, spec.precision)
    e_max = (TCAL.e_max_full if spec.method == "full" else TCAL.e_max_lora) * gpu.gemm_efficiency
    passes = 3 if spec.gradient_checkpointing else 2
    tokens_micro = b * padded

    t_compute = hw_per_token * tokens_micro / (peak * e_max)
    t_fixed = arch.num_layers * passes * TCAL.t_layer_s
    if spec.method != "full":
        n_modules = lora_counts(arch, spec.lora_r, spec.lora_targets).modules_per_layer
        t_fixed += arch.num_layers * passes * n_modules * TCAL.t_lora_module_s
    counts = arch_counts(arch)
    bw = gpu.mem_bw_gbs * 1e9 * TCAL.bw_efficiency
    t_dequant = 0.0
    if spec.method == "qlora":
        # per pass: read the 4-bit weight (~0.52 B), write the bf16 copy (2 B), the matmul reads it (2 B)
        t_dequant = passes * counts.quantized * 4.5 / bw
    if spec.compile:
        t_compute /= TCAL.compile_speedup
        t_fixed /= TCAL.compile_speedup
    t_micro = t_compute + t_fixed + t_dequant

    # optimizer step: read weights, grads, states; write weights and states (memory-bound)
    trainable = trainable_params(arch, spec)
    wb = weight_bytes(spec.precision)
    state = optimizer_bytes_per_param(spec.optimizer, spec.precision)
    shard = shards(spec, world)
    t_opt_unsharded = trainable * (3 * wb + 2 * state) * TCAL.optimizer_traffic_factor / bw
    t_opt = t_opt_unsharded / shard

    # communication
    link = gpu.link_gbs * 1e9 if nodes <= 1 else min(gpu.link_gbs, TCAL.internode_gbs) * 1e9
    t_comm = 0.0
    if world > 1:
        ring = 2 * (world - 1) / world
        grad_bytes = trainable * wb
        if spec.parallel == "ddp":
            t_comm = ring * grad_bytes / link  # one all-reduce per optimizer step
        else:
            if spec.method == "qlora":
                param_bytes = counts.quantized * nf4_bits(spec) / 8 + counts.unquantized * 2
            else:
                param_bytes = counts.total * 2
            # all-gather parameters each pass, reduce-scatter gradients, per micro-batch
            per_micro = (passes * param_bytes + grad_bytes) * (world - 1) / world / link
            t_comm = spec.grad_accum * per_micro
        t_comm *= TCAL.comm_exposed_nvlink if gpu.interconnect in ("nvlink", "infinity-fabric") else TCAL.comm_exposed_pcie
    t_offload = 0.0
    if spec.parallel == "fsdp-offload":
        param_bytes = counts.total * 2 / shard
        t_offload = spec.grad_accum * passes * param_bytes / (TCAL.host_link_gbs * 1e9)
        t_offload += trainable / shard * 16 / (TCAL.host_mem_gbs * 1e9)
        t_opt = 0.0

    step = spec.grad_accum * t_micro + t_opt + t_comm + t_offload + TCAL.t_step_overhead_s
    tokens_step = int(world * spec.grad_accum * b * real)
    tps = tokens_step / step
    model_per_token = model_flops_per_token(arch, spec, context)
    single = spec.grad_accum * t_micro + t_opt_unsharded + TCAL.t_step_overhead_s
    scaling = (single / step) if world > 1 else 1.0
    return ThroughputEstimate(
        tokens_per_s=round(tps, 2),
        tokens_per_s_per_gpu=round(tps / world, 2),
        mfu=round(model_per_token * tps / world / (gpu.bf16_tflops * 1e12), 4),
        step_time_s=round(step, 4),
        tokens_per_step=tokens_step,
        flops_per_token=model_per_token,
        hardware_flops_per_token=hw_per_token,
        scaling_efficiency=round(min(1.0, scaling), 4),
    )


def steps_and_hours(spec: JobSpec, tput: ThroughputEstimate) -> tuple[int, float] | None:
    total = spec.total_tokens()
    if total is None:
        return None
    steps = max(1, math.ceil(total / tput.tokens_per_step))
    return steps, total / tput.tokens_per_s / 3600
