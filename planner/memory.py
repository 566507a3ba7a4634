"""Peak GPU memory of a fine-tuning step, per GPU, as a breakdown.

The model is physical: every term is a tensor that PyTorch holds at the moment of peak, counted from the
architecture; a handful of calibrated constants (in `CAL`, each with where it comes from) absorb what the
count leaves out. The peak is the larger of two moments:

- start of backward: weights + adapter + optimizer states + gradients kept from earlier micro-batches
  + all saved activations + the logits/loss tensors;
- optimizer step: weights + adapter + optimizer states + all gradients + the optimizer's temporaries.

(During backward, activations are freed layer by layer while gradients appear, so the interior of the
backward pass never exceeds the larger of the two ends.)

Units: bytes internally, GiB (2**30) in the result — the unit of torch.cuda.max_memory_allocated()/2**30.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.counts import arch_counts, lora_counts, trainable_params
from planner.gpus import GPU
from planner.models import ModelArch
from planner.result import MemoryEstimate
from train.spec import JobSpec

GIB = float(2**30)

# NF4 with double quantization: 4 bits + an fp8 absmax per 64 weights + an fp32 second-level constant per 256
# blocks = 4 + 8/64 + 32/(64*256) = 4.127 bits; without double quantization 4 + 32/64 = 4.5 bits
# (Dettmers et al. 2023, QLoRA, section 3).
NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)
NF4_BITS = 4 + 32 / 64


@dataclass(frozen=True)
class Calibration:
    """Constants fitted on ../shared/data/measurements/published.csv (benchmarks/estimator_accuracy.py)."""

    # Multiplier on the counted saved-activation bytes: the count covers the tensors autograd saves in a
    # Llama-style HF/torchtune block; kernels' own scratch (SDPA logsumexp, RoPE caches) and the bf16
    # gradient of the residual stream are not itemised. Fitted: 1.1.
    activation_scale: float = 1.1
    # Bytes per logit element at the loss: bf16 logits (2) + their fp32 upcast (4) + fp32 log-softmax saved
    # for backward (4) = 10. torchtune's chunked CE ablation (TT2-3 -> TT2-4: -8.1 GiB for 2x4096x128256
    # logits, ~8 B/element) agrees.
    logits_bytes_per_element: float = 10.0
    # With a chunked loss only the 16-bit logits stay whole; one chunk of fp32 work is live at a time
    # (torchtune's 8 chunks).
    loss_chunks: int = 8
    # Allocator workspace held at peak: cuBLAS workspaces, attention scratch, the largest temporaries
    # (a matmul output, the residual-stream gradient). Fitted: 0.5 GiB.
    workspace_gib: float = 0.5
    # reserved / allocated: the caching allocator's fragmentation at peak. Fitted: 1.05 (the reserved-memory
    # rows: torchtune's LoRA tutorial, PEFT's L40S benchmark, LLaMA-Factory's nvidia-smi figures).
    reserved_ratio: float = 1.05
    # CUDA context and kernels (not in torch's allocated/reserved, but occupies the card): ~0.4-0.6 GiB
    # with lazy module loading on CUDA 12.
    cuda_context_gib: float = 0.5
    # torch.compile fuses elementwise chains (norms, SiLU x up, the loss upcast), so fewer intermediates are
    # saved. torchtune's controlled ablation (TT2-2 -> TT2-3, Llama-3.2-3B full, 2x4096 packed): 60.0 -> 51.0
    # GiB with ~6 GiB of weights: activations and logits x 0.83.
    compile_activation_factor: float = 0.83


CAL = Calibration()


# ------------------------------------------------------------------------------------------------------
# bytes per element, by precision
# ------------------------------------------------------------------------------------------------------
def nf4_bits(spec: JobSpec) -> float:
    """Bits per 4-bit quantised weight, with or without double quantization."""
    return NF4_DQ_BITS if spec.double_quant else NF4_BITS


def weight_bytes(precision: str) -> int:
    """Bytes per stored weight: 16-bit for pure bf16; fp32 masters for the mixed modes and fp32."""
    return 2 if precision == "bf16" else 4


def activation_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def optimizer_bytes_per_param(optimizer: str, precision: str) -> float:
    """Optimizer state bytes per trainable parameter.

    AdamW keeps two moments in the parameter's dtype (bf16 params -> 2 x 2 bytes; fp32 masters -> 2 x 4);
    bitsandbytes' 8-bit AdamW keeps two 8-bit moments plus one fp32 absmax per 256-value block
    (Dettmers et al. 2022, 8-bit optimizers): 2 + 8/256 bytes. Plain SGD without momentum keeps none.
    """
    if optimizer == "sgd":
        return 0.0
    if optimizer in ("adamw-8bit", "paged-adamw-8bit"):
        return 2.0 + 2 * 4 / 256
    return 2.0 * weight_bytes(precision)


def shards(spec: JobSpec, world: int) -> int:
    """Ways parameters, gradients and optimizer states are split: FSDP/ZeRO-3 over all GPUs, DDP not at all."""
    return world if spec.parallel in ("fsdp", "fsdp-offload", "zero3") and world > 1 else 1


# ------------------------------------------------------------------------------------------------------
# activations
# ------------------------------------------------------------------------------------------------------
def layer_activation_bytes(arch: ModelArch, spec: JobSpec, tokens: int, seq_len: int, batch: int) -> float:
    """Bytes autograd saves for one decoder layer's backward, for `tokens` = batch x seq_len tokens.

    Counted for a pre-norm decoder block (HF / torchtune implementations), 16-bit activations:
    - RMSNorm (x2): the fp32 upcast of its input (4 B) and, when the norm weight trains, the normalised
      16-bit output (2 B) -> 6 B/elem (full) or 4 B/elem (frozen norm).
    - Linear inputs, when the linear's weight trains (full) or a LoRA adapter reads them (lora_A saves its
      input; with dropout > 0 PEFT saves the dropped-out copy and a 1-byte mask per target instead).
      Frozen linears without an adapter save nothing (grad_input needs only the weight; bitsandbytes'
      MatMul4Bit saves no input either).
    - Attention: q, k, v and the output of SDPA / flash (k, v repeated to all heads: transformers repeats
      KV for SDPA whenever a mask is passed), plus the contiguous copy o_proj reads. Eager attention also
      saves the s x s score matrix (fp32 softmax output + its 16-bit cast): 6 B x batch x heads x s^2.
    - MLP: gated: the gate output (SiLU's input), SiLU's output and the up output (the product's operands);
      plain: the fc1 output (GELU's input) and GELU's output.
    - LoRA: each targeted linear's rank-r intermediate (lora_B's input).
    MoE: the expert MLP terms scale with experts_per_token (each token visits that many experts).
    """
    h = arch.hidden_size
    q_dim = arch.num_heads * arch.head_dim
    experts = arch.experts_per_token if arch.num_experts else 1
    inter = arch.intermediate_size * experts
    b = activation_bytes(spec.precision)
    full = spec.method == "full"
    dropout = spec.method != "full" and spec.lora_dropout > 0
    lora = None if full else lora_counts(arch, spec.lora_r, spec.lora_targets)
    targets = lora.targets if lora else frozenset()

    def lin_input(width: int, names: tuple[str, ...]) -> float:
        """Saved bytes for the input (width per token) shared by the linears `names`."""
        if full:
            return b * width
        hit = [n for n in names if n in targets]
        if not hit:
            return 0.0
        if dropout:  # one dropped-out copy + bool mask per targeted module
            return len(hit) * (b + 1) * width
        return b * width  # lora_A of every targeted module reads the same tensor

    norm = (6.0 if full else 4.0) * h * 2
    attn = 4 * b * q_dim  # q, k, v (repeated), out
    attn += lin_input(h, ("q_proj", "k_proj", "v_proj"))
    attn += lin_input(q_dim, ("o_proj",))
    if arch.gated_mlp:
        mlp = 3 * b * inter
        mlp += lin_input(h, ("gate_proj", "up_proj"))
    else:
        mlp = 2 * b * inter
        mlp += lin_input(h, ("up_proj",))
    mlp += lin_input(inter, ("down_proj",))
    lora_mid = b * lora.rank_per_token if lora else 0.0
    per_token = norm + attn + mlp + lora_mid
    total = per_token * tokens
    if spec.attention == "eager":
        total += 6 * batch * arch.num_heads * seq_len * seq_len
    return total * CAL.activation_scale


def activation_bytes_total(arch: ModelArch, spec: JobSpec, tokens: int, seq_len: int, batch: int) -> float:
    """All saved activations of a micro-batch, with or without per-layer gradient checkpointing.

    With checkpointing (non-reentrant, one checkpoint per decoder layer) each layer keeps only its input
    (16-bit hidden state); backward recomputes one layer at a time, so one layer's full set is live on top.
    The final norm and the lm_head's input are outside the checkpointed blocks.
    """
    per_layer = layer_activation_bytes(arch, spec, tokens, seq_len, batch)
    b = activation_bytes(spec.precision)
    h = arch.hidden_size
    tail = (4 + 2) * h * tokens  # final norm fp32 upcast + lm_head input
    if spec.gradient_checkpointing:
        return arch.num_layers * b * h * tokens + per_layer + tail
    return arch.num_layers * per_layer + tail


# ------------------------------------------------------------------------------------------------------
# the whole step
# ------------------------------------------------------------------------------------------------------
def estimate_memory(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int,
                    seq_len: int | None = None, batch: int | None = None) -> MemoryEstimate:
    """Per-GPU peak memory of `spec` on `world` GPUs of type `gpu` (overrides for the fit search)."""
    s = seq_len or spec.seq_len
    mb = batch or spec.batch_size
    tokens = s * mb
    method, prec, par = spec.method, spec.precision, spec.parallel
    offload = par == "fsdp-offload"
    shard = shards(spec, world)
    sharded = shard > 1

    counts = arch_counts(arch)
    total = counts.total
    wb = weight_bytes(prec)
    # -- weights --
    if method == "qlora":
        w = counts.quantized * nf4_bits(spec) / 8 + counts.unquantized * 2
    else:
        w = total * wb
    if prec in ("bf16-mixed", "fp16-mixed") and method != "qlora":
        w += total * 2  # autocast's 16-bit copies of every weight, saved for backward
    if offload:
        # parameters live on the CPU; two layers' worth are gathered on the GPU at a time (prefetch)
        w = 2 * w / arch.num_layers
    elif sharded:
        w = w / shard + 2 * (w / arch.num_layers)  # own shard + two unsharded layers (current + prefetch)

    # -- trainable parameters: adapter, gradients, optimizer --
    trainable = trainable_params(arch, spec)
    adapter = 0.0 if method == "full" else trainable * wb / shard
    grad_bytes = trainable * wb / shard
    opt_per = optimizer_bytes_per_param(spec.optimizer, prec)
    opt = trainable * opt_per / shard
    paged = spec.optimizer == "paged-adamw-8bit"
    if paged:
        # bitsandbytes pages these states through CUDA unified memory: evicted to the host under pressure,
        # and not counted by torch's allocator (torchtune's 8B full fine-tune on a 24 GB RTX 4090 holds
        # 16 GB of paged 8-bit states beyond its 18.9 GiB peak).
        opt = 0.0
    if offload:
        opt = 0.0
        grad_bytes = grad_bytes if method != "full" else 2 * grad_bytes / arch.num_layers

    # -- activations and logits --
    act = activation_bytes_total(arch, spec, tokens, s, mb)
    if spec.chunked_loss:
        per_element = 2 + (CAL.logits_bytes_per_element - 2) / CAL.loss_chunks
    else:
        per_element = CAL.logits_bytes_per_element
    logits = tokens * arch.vocab_size * per_element
    if spec.compile:
        act *= CAL.compile_activation_factor
        logits *= CAL.compile_activation_factor

    # -- overhead: workspace + the largest transient (QLoRA's dequantised weight; DDP's gradient buckets)
    overhead = CAL.workspace_gib * GIB
    if method == "qlora":
        overhead += 2 * counts.largest_linear * 2  # two dequantised weights in flight
    if par == "ddp" and world > 1:
        overhead += grad_bytes  # DDP's flat gradient buckets (a second copy of the gradients)

    # the two candidate peaks
    # At the optimizer step every gradient is held and nothing else: fused AdamW (PyTorch's fused=True, the
    # default of torchtune recipes and of transformers 5's Trainer) updates in place, without temporaries.
    grads_kept = grad_bytes if spec.grad_accum > 1 else 0.0
    if act + logits + grads_kept >= grad_bytes:
        grads_at_peak, act_at_peak, logits_at_peak = grads_kept, act, logits
    else:
        grads_at_peak, act_at_peak, logits_at_peak = grad_bytes, 0.0, 0.0
    breakdown = {
        "weights": w,
        "adapter": adapter,
        "gradients": grads_at_peak,
        "optimizer": opt,
        "activations": act_at_peak,
        "logits": logits_at_peak,
        "overhead": overhead,
    }
    allocated = sum(breakdown.values())
    reserved = allocated * CAL.reserved_ratio
    capacity = gpu.memory_gib
    headroom = capacity - reserved / GIB - CAL.cuda_context_gib
    return MemoryEstimate(
        peak_allocated_gib=round(allocated / GIB, 3),
        peak_reserved_gib=round(reserved / GIB, 3),
        capacity_gib=capacity,
        breakdown_gib={k: round(v / GIB, 3) for k, v in breakdown.items()},
        headroom_gib=round(headroom, 3),
    )


def fits(mem: MemoryEstimate) -> bool:
    """Fits when reserved memory plus the CUDA context stays within the card."""
    return mem.headroom_gib >= 0
