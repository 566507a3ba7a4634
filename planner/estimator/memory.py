"""Peak GPU memory of a fine-tuning step, per GPU: the largest of the step's moments, each counted.

Every term is a tensor PyTorch holds at that moment, counted from the architecture and the dtypes the
training stack really uses (planner/estimator/stacks.py: our trainer by default). The moments:

- loss_backward: the first backward op of the loss (`_log_softmax_backward_data`): everything saved for
  backward (checkpointed layer inputs, or every layer's saved activations) + the loss's live logits blocks
  (12 B per logit element with the fp32 upcast) + autocast's bf16 copy of a frozen fp32 lm_head;
- layer_recompute (checkpointing) / layer_backward (without): backward of the last decoder layer: the saved
  set + that layer's recomputed activations + its backward transients (activation gradients, the attention
  kernel's fp32 dq accumulator, dequantized 4-bit weights, one layer's FSDP reduce-scatter buffer);
- backward_end: late in backward, when nearly every gradient exists (full fine-tuning), then the
  embedding's dense gradient on top of all others;
- optimizer_step: every gradient + optimizer states (+ a non-fused optimizer's temporaries).
Weights, adapters, optimizer states (and DDP's flat gradient buckets, allocated at wrap time) are live in all.

Reserved memory is the allocator's: the loss's big blocks are replayed through a model of PyTorch's caching
allocator (planner/estimator/allocator.py), which holds the freed 16-bit logits' segment while the fp32
blocks open new ones (reserved/allocated 1.13-1.24 at long context, issue 9), instead of a fitted ratio.

Units: bytes internally, GiB (2**30) in the result -- the unit of torch.cuda.max_memory_allocated()/2**30.
"""
from __future__ import annotations

from dataclasses import dataclass

from planner.estimator.counts import arch_counts, lora_counts, trainable_params
from planner.estimator.allocator import loss_fragmentation
from planner.estimator.stacks import Mechanisms, mechanisms
from planner.gpus import GPU
from planner.models import ModelArch
from planner.result import BREAKDOWN_KEYS, MemoryEstimate
from train.spec import JobSpec

GIB = float(2**30)
MIB = float(2**20)

# NF4 with double quantization: 4 bits + an fp8 absmax per 64 weights + an fp32 second-level constant per 256
# blocks = 4 + 8/64 + 32/(64*256) = 4.127 bits; without double quantization 4 + 32/64 = 4.5 bits
# (Dettmers et al. 2023, QLoRA, section 3).
NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)
NF4_BITS = 4 + 32 / 64

MOMENTS = ("loss_forward", "loss_backward", "layer_recompute", "layer_backward", "backward_end", "optimizer_step")


@dataclass(frozen=True)
class Calibration:
    """The few constants left after counting, each with its source (none is fitted to the published rows)."""

    # With a chunked loss one chunk's fp32 work is live at a time: train/loss.py LOSS_CHUNKS and torchtune's
    # CEWithChunkedOutputLoss both use 8 chunks.
    loss_chunks: int = 8
    # cuBLAS workspace the caching allocator hands out per handle: CUBLAS_WORKSPACE_CONFIG's default
    # ":4096:8" = 8 x 4 MiB on Hopper (PyTorch docs, "CUDA semantics: cuBLAS workspaces", 2.x), two streams.
    cublas_workspace_mib: float = 64.0
    # CUDA context and kernels: not in torch's allocated/reserved, but occupies the card; ~0.4-0.6 GiB with lazy
    # module loading on CUDA 12 (nvidia-smi minus torch.cuda.memory_reserved on an idle process, NVIDIA
    # CUDA C++ Programming Guide "Lazy Loading", CUDA 12.2).
    cuda_context_gib: float = 0.5
    # torch.compile fuses elementwise chains (norms, SiLU x up, the loss upcast), so fewer intermediates are
    # saved. torchtune's controlled ablation (TT2-2 -> TT2-3, Llama-3.2-3B full, 2x4096 packed, 2024-10):
    # 60.0 -> 51.0 GiB with ~6 GiB of weights: activations and logits x 0.83.
    compile_activation_factor: float = 0.83


CAL = Calibration()

# In words, for the plan's `assumptions` (category "estimator").
SOURCES = {
    "loss_chunks": "train/loss.py LOSS_CHUNKS and torchtune CEWithChunkedOutputLoss (v0.3, 2024-09): 8 chunks",
    "cublas_workspace_mib": "PyTorch 2.x docs, CUDA semantics / cuBLAS workspaces: CUBLAS_WORKSPACE_CONFIG "
                            ":4096:8 default, two streams",
    "cuda_context_gib": "NVIDIA CUDA 12.2 Programming Guide, lazy loading: ~0.4-0.6 GiB context per process",
    "compile_activation_factor": "torchtune README optimization-flags ablation (2024-11): Llama-3.2-3B full "
                                 "fine-tune, 60.0 -> 51.0 GiB with torch.compile",
}


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


def optimizer_bytes_per_param(optimizer: str, precision: str, param_bytes: float | None = None) -> float:
    """Optimizer state bytes per trainable parameter (`param_bytes`: the parameter's dtype size).

    AdamW keeps two moments in the parameter's dtype; bitsandbytes' 8-bit AdamW keeps two 8-bit moments plus
    one fp32 absmax per 256-value block (Dettmers et al. 2022, 8-bit optimizers): 2 + 8/256 bytes. SGD in
    the bundled trainer has momentum 0.9 (train/optim.py): one buffer in the parameter's dtype.
    """
    pb = weight_bytes(precision) if param_bytes is None else param_bytes
    if optimizer == "sgd":
        return float(pb)
    if optimizer in ("adamw-8bit", "paged-adamw-8bit"):
        return 2.0 + 2 * 4 / 256
    return 2.0 * pb


def shards(spec: JobSpec, world: int) -> int:
    """Ways parameters, gradients and optimizer states are split: FSDP/ZeRO-3 over all GPUs, DDP not at all."""
    return world if spec.parallel in ("fsdp", "fsdp-offload", "zero3") and world > 1 else 1


def residual_bytes(spec: JobSpec, mech: Mechanisms) -> int:
    """Bytes per element of the residual stream (what a checkpointed layer keeps as its input).

    fp32 whenever the embedding weight is fp32 -- k-bit preparation's casts, or fp32 master weights: the
    embedding output is fp32 and `residual + attn_out` promotes the whole stream to fp32.
    """
    if spec.precision == "fp32":
        return 4
    if spec.method == "qlora":
        return 4 if mech.kbit_prep_fp32 else 2
    return 4 if spec.precision in ("bf16-mixed", "fp16-mixed") else 2


def mlp_bytes(spec: JobSpec, mech: Mechanisms) -> int:
    """Bytes per element of the MLP's intermediates (gate, up, activation, their product).

    QLoRA: bitsandbytes' Linear4bit computes in the compute dtype but returns its input's dtype
    (`matmul_4bit(...).to(inp_dtype)`, bitsandbytes/nn/modules.py), and PEFT adds the adapter's output to that
    result; with an fp32 residual stream (k-bit preparation's fp32 norms) gate and up come out in fp32 and SiLU
    and the product follow: 4 B. Attention is unaffected: SDPA is on autocast's 16-bit list, so it saves
    16-bit q, k, v. Otherwise the activation dtype.
    """
    if spec.method == "qlora":
        return residual_bytes(spec, mech)
    return activation_bytes(spec.precision)


def _autocast(spec: JobSpec, mech: Mechanisms) -> bool:
    if spec.method == "qlora":
        return mech.autocast_qlora
    return spec.precision in ("bf16-mixed", "fp16-mixed")


def adapter_param_bytes(spec: JobSpec, mech: Mechanisms) -> int:
    return 4 if spec.precision == "fp32" else mech.adapter_bytes


# ------------------------------------------------------------------------------------------------------
# activations
# ------------------------------------------------------------------------------------------------------
def layer_activation_bytes(arch: ModelArch, spec: JobSpec, tokens: int, seq_len: int, batch: int) -> float:
    """Bytes autograd saves for one decoder layer's backward, for `tokens` = batch x seq_len tokens.

    Counted for a pre-norm decoder block (HF / torchtune implementations):
    - RMSNorm (x2): the fp32 upcast of its input (4 B) and, when the norm weight trains, the normalised
      16-bit output (2 B) -> 6 B/elem (full) or 4 B/elem (frozen norm).
    - Linear inputs, when the linear's weight trains (full). Frozen linears save nothing for their own
      weight (bitsandbytes' MatMul4Bit saves no input either). A LoRA adapter's lora_A saves its input:
      PEFT casts it to the adapter's dtype (fp32 adapters, no autocast: a 4-byte copy per targeted module),
      under autocast the matmul saves a 16-bit cast per module; with a 16-bit adapter and no dropout the
      modules reading one tensor share it. Dropout > 0 saves the dropped-out copy and a 1-byte mask per module.
    - Attention: q, k, v and the output (k, v repeated to all heads: transformers repeats KV for SDPA
      whenever a mask is passed), the contiguous copy o_proj reads, and the kernel's fp32 logsumexp per head.
      Eager attention also saves the s x s score matrix (fp32 softmax output + its 16-bit cast).
    - MLP: gated: the gate output (SiLU's input), SiLU's output and the up output; plain: fc1 out, GELU out.
    - LoRA: each targeted linear's rank-r intermediate (lora_B's input), in the adapter's compute dtype.
    MoE: the expert MLP terms scale with experts_per_token (each token visits that many experts).
    """
    total = _layer_saved_per_token(arch, spec) * tokens
    if spec.attention == "eager":
        total += eager_score_bytes(spec)[0] * batch * arch.num_heads * seq_len * seq_len
    return total


def _layer_saved_per_token(arch: ModelArch, spec: JobSpec, mlp_only: bool = False) -> float:
    """Saved bytes per token of one layer; `mlp_only`: the MLP block's share (its norm, inputs and
    intermediates), which the MLP's backward frees before attention's backward starts."""
    mech = mechanisms(spec)
    h = arch.hidden_size
    q_dim = arch.num_heads * arch.head_dim
    experts = arch.experts_per_token if arch.num_experts else 1
    inter = arch.intermediate_size * experts
    # QLoRA computes in 16-bit whatever spec.precision says (train/precision.py)
    b = 2 if spec.method == "qlora" else activation_bytes(spec.precision)
    full = spec.method == "full"
    dropout = not full and spec.lora_dropout > 0
    lora = None if full else lora_counts(arch, spec.lora_r, spec.lora_targets)
    targets = lora.targets if lora else frozenset()
    autocast = _autocast(spec, mech)
    a_bytes = adapter_param_bytes(spec, mech)
    cast_bytes = b if (autocast or a_bytes == b) else a_bytes  # what lora_A's matmul saves per element
    shared = a_bytes == b and not autocast

    def lin_input(width: int, names: tuple[str, ...]) -> float:
        if full:
            return b * width
        hit = [n for n in names if n in targets]
        if not hit:
            return 0.0
        if dropout:
            return len(hit) * (cast_bytes + 1) * width
        return (1 if shared else len(hit)) * cast_bytes * width

    # each hidden-sized norm (2 per layer; Gemma 2/3: 4, with post-attention and post-MLP norms) saves its fp32
    # upcast and, when its weight trains, the normalised output
    norm = (6.0 if full else 4.0) * h * arch.norms_per_layer
    # k and v as the attention kernel saves them: grouped (flash-attention 2; SDPA with enable_gqa) or
    # repeated to every query head (eager's repeat_kv; older stacks' SDPA), see stacks.sdpa_gqa_native
    grouped = spec.attention == "flash" or (spec.attention == "sdpa" and mech.sdpa_gqa_native)
    kv = arch.num_kv_heads * arch.head_dim if grouped else q_dim
    # q, k, v, the output and the fp32 logsumexp per head. The fused kernels return the output already in
    # (batch, seq, heads, dim) layout, so `transpose(1, 2).contiguous()` is free and o_proj reads the saved
    # output itself; eager's probs @ v is (batch, heads, seq, dim) and o_proj reads a contiguous copy.
    attn = 2 * b * q_dim + 2 * b * kv + 4 * arch.num_heads
    if spec.attention == "eager":
        attn += b * q_dim
    attn += lin_input(h, ("q_proj", "k_proj", "v_proj"))
    if not full:
        attn += lin_input(q_dim, ("o_proj",))
    bm = mlp_bytes(spec, mech)
    if arch.gated_mlp:
        mlp = 3 * bm * inter + lin_input(h, ("gate_proj", "up_proj"))
    else:
        mlp = 2 * bm * inter + lin_input(h, ("up_proj",))
    mlp += lin_input(inter, ("down_proj",))
    lora_mid = (b if autocast else a_bytes) * lora.rank_per_token if lora else 0.0
    if mlp_only:
        return norm / 2 + mlp  # the MLP's half of the norms
    return norm + attn + mlp + lora_mid


def _layer_transient_per_token(arch: ModelArch, spec: JobSpec) -> float:
    """Bytes that exist only while one decoder layer runs backward, on top of what it saved.

    The larger of the MLP's backward (grads of the product's two operands and of SiLU's input, 3 x inter)
    and attention's backward (dq, dk, dv at all heads plus flash/SDPA's fp32 dq accumulator and softmax
    row sums, flash-attention 2 `mha_bwd`), plus the gradient of the residual stream in and out of the layer.
    Per token; eager attention's s x s scores at its softmax's backward are added in moments().
    """
    mech = mechanisms(spec)
    experts = arch.experts_per_token if arch.num_experts else 1
    inter = arch.intermediate_size * experts
    mlp = 3 * mlp_bytes(spec, mech) * inter
    return max(mlp, _attn_transient_per_token(arch, spec)) + 2 * residual_bytes(spec, mech) * arch.hidden_size


def _attn_transient_per_token(arch: ModelArch, spec: JobSpec) -> float:
    """Attention's backward per token: dq, dk, dv at all heads + the fp32 dq accumulator and row sums."""
    b = 2 if spec.method == "qlora" else activation_bytes(spec.precision)
    q_dim = arch.num_heads * arch.head_dim
    return 3 * b * q_dim + 4 * q_dim + 4 * arch.num_heads


def eager_score_bytes(spec: JobSpec) -> tuple[int, int]:
    """(saved, live at its softmax's backward) bytes per attention-score element of eager attention.

    transformers' eager_attention_forward: `softmax(scores, dtype=float32).to(query.dtype)` then
    `probs @ v`. Saved: softmax's fp32 output (4 B) and, with 16-bit activations, the 16-bit cast that the
    matmul saves (2 B). At `_softmax_backward_data` the cast has been freed with the matmul's backward and
    three fp32 tensors are live: the saved output, the incoming fp32 gradient (the cast's backward) and the
    op's fp32 result: 12 B (traced on meta tensors; the same op in fp32 with no cast).
    """
    b = 2 if spec.method == "qlora" else activation_bytes(spec.precision)
    return (4 + (b if b < 4 else 0), 12)


def softcap_bytes(arch: ModelArch, mech: Mechanisms) -> float:
    """Extra bytes per logit element of a final logit soft-cap (Gemma 2): tanh saves its output for backward.

    Our trainer caps the fp32 logits (train/loss.py `tanh(logits / cap) * cap` after `.float()`): 4 B live at
    the loss's backward peak next to the 12 (traced on meta tensors: tanh, log-softmax, nll grad, output, 4 B
    each). transformers' Gemma2ForCausalLM and torchtune's TanhSoftCapping cap the 16-bit logits: 2 B.
    """
    if not arch.logit_softcap:
        return 0.0
    return 4.0 if mech.softcap_fp32 else 2.0


# ------------------------------------------------------------------------------------------------------
# the whole step
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Moment:
    name: str
    values: tuple[float, ...]  # bytes, in BREAKDOWN_KEYS order
    fragmentation: float = 0.0  # bytes the allocator holds beyond the live ones at this moment

    @property
    def parts(self) -> dict[str, float]:
        return dict(zip(BREAKDOWN_KEYS, self.values))

    @property
    def allocated(self) -> float:
        return sum(self.values)


@dataclass(frozen=True)
class _Terms:
    """The token-independent terms of a job on `world` GPUs and the per-token coefficients (bytes)."""

    w: float
    root_gathered: float  # FSDP: the root unit's unsharded parameters beyond this rank's shard (compute phases)
    adapter: float
    opt: float
    opt_temp: float
    grads_all: float
    grads_kept: float
    head_grad: float
    root_grad_extra: tuple[float, float]  # FSDP: the root's unsharded head and embedding gradients beyond the share
    embed_accumulates: bool  # the embedding's gradient is added to one that exists (tied head, or accumulation)
    layer_grad: float
    embed_grad: float
    ddp_buckets: float
    rs_buffer: float
    dequant: float
    lm_head_copy: float
    block_copies: float
    layer_copy: float
    res: int  # residual-stream bytes per element
    per_layer_tok: float  # one layer's saved bytes per token (eager's s^2 term apart)
    transient_tok: float  # one layer's backward transients per token
    attn_transient_tok: float  # attention's share of them
    mlp_saved_tok: float  # the MLP block's share of per_layer_tok (freed before attention's backward)
    loss_bytes: float
    upcast: bool


def _spec_key(spec: JobSpec) -> tuple:
    t = spec.lora_targets
    return (spec.method, spec.precision, spec.parallel, spec.optimizer, spec.lora_r,
            t if isinstance(t, str) else tuple(t), spec.lora_dropout, spec.double_quant, spec.gradient_checkpointing,
            spec.attention, spec.chunked_loss, spec.compile, spec.stack, spec.grad_accum)


_TERMS: dict[tuple, _Terms] = {}


def _terms(arch: ModelArch, spec: JobSpec, world: int) -> _Terms:
    key = (arch, _spec_key(spec), world)
    got = _TERMS.get(key)
    if got is None:
        if len(_TERMS) > 4096:
            _TERMS.clear()
        got = _TERMS[key] = _compute_terms(arch, spec, world)
    return got


def _compute_terms(arch: ModelArch, spec: JobSpec, world: int) -> _Terms:
    mech = mechanisms(spec)
    method, prec, par = spec.method, spec.precision, spec.parallel
    offload = par == "fsdp-offload"
    shard = shards(spec, world)
    sharded = shard > 1
    L, h, V = arch.num_layers, arch.hidden_size, arch.vocab_size
    counts = arch_counts(arch)
    wb = weight_bytes(prec)
    autocast = _autocast(spec, mech)

    # -- resident weights --
    if method == "qlora":
        unq = 4 if mech.kbit_prep_fp32 else 2
        w_full = counts.quantized * nf4_bits(spec) / 8 + counts.unquantized * unq
        outer = 4 if mech.kbit_prep_fp32 else 2
    else:
        w_full = counts.total * wb
        outer = wb
    lm_head_fp32 = outer == 4
    block_w = max(0.0, (w_full - (counts.embedding + counts.lm_head) * outer) / L)
    # FSDP1 with MixedPrecision(param_dtype=bf16): fp32 flat shards, 16-bit gathered layers, nothing to autocast
    gather_16 = sharded and par in ("fsdp", "fsdp-offload") and mech.fsdp_flat_fp32 and wb == 4 and prec != "fp32" \
        and (method == "full" or (method == "lora" and mech.fsdp_flat_fp32_lora))
    gathered = block_w / 2 if gather_16 else block_w
    if offload:
        w = 2 * (w_full / L) * (0.5 if gather_16 else 1.0)  # two layers gathered from the CPU (current + prefetch)
    elif sharded:
        w = w_full / shard + 2 * gathered  # own shard + two gathered layers (current + prefetch)
    else:
        w = w_full
    # FSDP (1 and 2) does not reshard the root unit (embeddings, final norm, lm_head: everything outside the
    # wrapped decoder layers) after forward, since backward needs it at once (torch.distributed.fsdp
    # _runtime_utils._post_forward_reshard: `free_unsharded_flat_param = not state._is_root and ...`;
    # fully_shard's root reshard_after_forward=False): from the root's pre-forward to its post-backward every
    # rank holds the whole root. DeepSpeed ZeRO-3 gathers per module instead (not modelled as a root).
    root_w = (w_full - block_w * L) * (0.5 if gather_16 else 1.0)
    root_gathered = 0.0
    if par in ("fsdp", "fsdp-offload") and sharded and mech.fsdp_root_embeddings:
        root_gathered = root_w if offload else root_w * (1 - 1 / shard)
    if sharded and mech.zero3_buckets and par == "zero3":
        w += 1.9 * h * h * 2  # reduce bucket h^2 + prefetch bucket 0.9 h^2, 16-bit (HF "auto" ZeRO-3 config)

    # -- autocast's 16-bit copies, saved for backward --
    lm_head_copy = V * h * 2 if (autocast and lm_head_fp32 and method != "full") else 0.0
    block_copies = layer_copy = 0.0
    if autocast and method != "qlora" and not gather_16:
        layer_copy = sum(g.weight_params * g.count for g in counts.groups) * 2
        block_copies = 0.0 if spec.gradient_checkpointing else layer_copy * L
        lm_head_copy = V * h * 2

    # -- trainable parameters, gradients, optimizer --
    trainable = trainable_params(arch, spec)
    pbytes = wb if method == "full" else adapter_param_bytes(spec, mech)
    adapter = 0.0 if method == "full" else trainable * pbytes / shard
    grads_all = trainable * pbytes / shard
    opt = trainable * optimizer_bytes_per_param(spec.optimizer, prec, pbytes) / shard
    if par == "zero3" and mech.zero3_buckets and method == "full" and wb == 2:
        opt += trainable * 4 / shard  # DeepSpeed's fp32 master weights with bf16 (2 + 2 + 12 B per parameter)
    if spec.optimizer == "paged-adamw-8bit":
        # paged through CUDA unified memory: evicted to the host under pressure and not counted by torch's
        # allocator (torchtune's 8B full fine-tune on a 24 GB RTX 4090 holds 16 GB of paged 8-bit states).
        opt = 0.0
    if offload:
        opt = 0.0
        if method == "full":
            grads_all = 2 * trainable * pbytes / L
    opt_temp = 0.0
    if spec.optimizer == "adamw" and not mech.fused_adamw:
        opt_temp = 2 * trainable * pbytes / shard  # foreach AdamW: sqrt(v) and the update, one param-size each
    full_grads = method == "full" and not offload
    # gradients in the order backward creates them: the lm_head's and the final norm's first (a tied
    # embedding's whole gradient is created there), then one layer's at a time, then the embedding's
    embed_grad = counts.embedding * wb / shard if full_grads else 0.0
    layer_grad = arch._layer_params() * wb / shard if full_grads else 0.0
    outside = grads_all - L * layer_grad if full_grads else 0.0  # embedding + lm_head + final norm
    head_grad = outside - (embed_grad if counts.lm_head else 0.0)
    factor = CAL.compile_activation_factor if spec.compile else 1.0
    root_grad_extra = (0.0, 0.0)
    if full_grads and sharded and par in ("fsdp", "fsdp-offload") and mech.fsdp_root_embeddings:
        # the root's flat gradient is unsharded from the lm_head's backward to the root's post-backward
        # reduce-scatter (after the embedding's): the head's and the embedding's gradients at full size
        root_grad_extra = (head_grad * (shard - 1), embed_grad * (shard - 1))
    return _Terms(
        w=w, root_gathered=root_gathered, adapter=adapter, opt=opt, opt_temp=opt_temp, grads_all=grads_all,
        grads_kept=grads_all if spec.grad_accum > 1 else 0.0, head_grad=head_grad, root_grad_extra=root_grad_extra, layer_grad=layer_grad,
        embed_accumulates=not counts.lm_head or spec.grad_accum > 1,
        embed_grad=embed_grad,
        ddp_buckets=grads_all if (par == "ddp" and world > 1) else 0.0,  # flat buckets, allocated at wrap time
        rs_buffer=(trainable * pbytes / L) if sharded else 0.0,  # one layer's unsharded grads (reduce-scatter)
        dequant=2 * counts.largest_linear * 2 if method == "qlora" else 0.0,  # two dequantized weights in flight
        lm_head_copy=lm_head_copy, block_copies=block_copies, layer_copy=layer_copy,
        res=residual_bytes(spec, mech),
        per_layer_tok=_layer_saved_per_token(arch, spec) * factor,
        transient_tok=_layer_transient_per_token(arch, spec),
        attn_transient_tok=_attn_transient_per_token(arch, spec) + 2 * residual_bytes(spec, mech) * h,
        mlp_saved_tok=_layer_saved_per_token(arch, spec, mlp_only=True) * factor,
        loss_bytes=(mech.loss_bytes_per_logit + softcap_bytes(arch, mech)) * factor,
        upcast=mech.loss_bytes_per_logit >= 12)


def moments(arch: ModelArch, spec: JobSpec, world: int, seq_len: int | None = None,
            batch: int | None = None) -> list[Moment]:
    """Every candidate peak of one training step, per GPU, in bytes.

    Saved for backward at the start of backward: with checkpointing (non-reentrant, one checkpoint per decoder
    layer) each layer's input in the residual stream's dtype; without it every layer's saved set. Outside the
    blocks: the final norm's fp32 upcast and 16-bit output, the lm_head's input and the loss's gather of the
    labelled positions (`tail`).
    """
    t = _terms(arch, spec, world)
    root = t.root_gathered
    s = seq_len or spec.seq_len
    mb = batch or spec.batch_size
    tokens = s * mb
    L, h = arch.num_layers, arch.hidden_size
    factor = CAL.compile_activation_factor if spec.compile else 1.0
    per_layer = t.per_layer_tok * tokens
    transient = t.transient_tok * tokens
    mask = 0.0
    if spec.attention == "eager":
        scores = mb * arch.num_heads * s * s
        saved_e, live_e = eager_score_bytes(spec)
        per_layer += saved_e * scores * factor
        # at attention's backward (the s x s softmax backward) the MLP's saved tensors are already freed
        transient = max(transient, (t.attn_transient_tok - t.mlp_saved_tok) * tokens + (live_e - saved_e) * scores)
        mask = mb * s * s * t.res  # the 4-D additive causal mask, in the embedding output's dtype, kept all step
    tail = (4 + 2 + 2) * h * tokens * factor
    inputs = L * t.res * h * tokens  # checkpointed layer inputs: the residual stream, which compile leaves alone
    if spec.gradient_checkpointing:
        saved = inputs + tail + mask
    else:
        saved = L * per_layer + tail + mask
    elements = float(tokens) * arch.vocab_size
    loss_elems = elements / CAL.loss_chunks if spec.chunked_loss else elements
    loss_live = t.loss_bytes * loss_elems
    frag = loss_fragmentation(loss_elems * factor, upcast=t.upcast)
    overhead = t.ddp_buckets + CAL.cublas_workspace_mib * MIB

    def moment(name: str, grads: float, acts: float, logits: float, extra: float, fragmentation: float = 0.0,
               copies: float = 0.0) -> Moment:
        # BREAKDOWN_KEYS order: weights, adapter, gradients, optimizer, activations, logits, overhead
        return Moment(name, (t.w + copies, t.adapter, grads, t.opt, acts, logits, overhead + extra), fragmentation)

    out = [moment("loss_backward", t.grads_kept, saved, loss_live, 0.0, frag,
                  root + t.block_copies + t.lm_head_copy)]
    if spec.method == "full" and t.layer_copy and spec.gradient_checkpointing:
        # autocast caches its 16-bit cast of every leaf weight that requires grad until the autocast region
        # ends (aten autocast_mode.cpp `cached_cast`), i.e. after the loss's forward: with checkpointing every
        # layer's copy is still live there, whatever FSDP sharded (facebookresearch/fairscale#650). At the
        # loss's forward the fp32 logits and their log-softmax are live: the backward's 12 B less the two fp32
        # gradients, plus the 16-bit logits' 2 B until the upcast.
        fwd = (t.loss_bytes - 4) * loss_elems
        out.append(moment("loss_forward", t.grads_kept, saved, fwd, 0.0, 0.0,
                          root + L * t.layer_copy + t.lm_head_copy))
    grads_late = (t.grads_kept if spec.grad_accum > 1 else t.head_grad + t.layer_grad) + t.root_grad_extra[0]
    layer_extra = t.dequant + t.rs_buffer
    if spec.gradient_checkpointing:
        acts = inputs + mask + per_layer + transient
        out.append(moment("layer_recompute", grads_late, acts, 0.0, layer_extra, copies=root + t.layer_copy))
        first = t.res * h * tokens + mask + per_layer + transient  # layer 0, with nearly every gradient live
    else:
        out.append(moment("layer_backward", grads_late, saved - tail + transient, 0.0, layer_extra,
                          copies=root + t.block_copies))
        first = mask + per_layer + transient
    if spec.method == "full" or spec.grad_accum > 1:
        head_x, embed_x = t.root_grad_extra
        # a tied embedding's gradient already exists from the head (and every gradient does on a later micro
        # batch): the embedding's backward then makes a new dense gradient that AccumulateGrad adds to it
        late = (t.grads_all if t.embed_accumulates else t.grads_all - t.embed_grad) + head_x
        end = t.grads_all + (t.embed_grad if t.embed_accumulates else 0.0) + head_x + embed_x
        out.append(moment("backward_end", late, first, 0.0, layer_extra, copies=root + t.layer_copy))
        out.append(moment("backward_end", end, t.res * h * tokens, 0.0, t.rs_buffer, copies=root))
    out.append(moment("optimizer_step", t.grads_all, 0.0, 0.0, t.opt_temp))
    return out


def peak_bytes(arch: ModelArch, spec: JobSpec, world: int, seq_len: int | None = None,
               batch: int | None = None) -> tuple[Moment, float]:
    """(the moment with the most live bytes, peak reserved bytes) -- the fit searches' fast path."""
    ms = moments(arch, spec, world, seq_len, batch)
    totals = [m.allocated for m in ms]
    i = max(range(len(ms)), key=totals.__getitem__)
    reserved = max(a + m.fragmentation for a, m in zip(totals, ms))
    return ms[i], reserved


def estimate_memory(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int,
                    seq_len: int | None = None, batch: int | None = None, *,
                    band_ratios: tuple[float, float] | None = None,
                    memory_factor: float = 1.0) -> MemoryEstimate:
    """Per-GPU peak memory of `spec` on `world` GPUs of type `gpu` (overrides for the fit searches).

    `band_ratios` (low, high): measured/predicted ratios that bound the estimator's error
    (planner/estimator/bands.py; default: the band in planner/data/accuracy.json).
    `memory_factor`: a user calibration's measured/predicted correction (planner/estimator/calibration.py).
    """
    ms = moments(arch, spec, world, seq_len, batch)
    totals = [m.allocated for m in ms]
    i = max(range(len(ms)), key=totals.__getitem__)
    peak = ms[i]
    allocated = totals[i] * memory_factor
    reserved = max(max(a + m.fragmentation for a, m in zip(totals, ms)) * memory_factor, allocated)
    capacity = gpu.memory_gib
    if band_ratios is None:
        from planner.estimator.bands import default_band_ratios

        band_ratios = default_band_ratios()
    lo, hi = band_ratios
    reserved_gib = reserved / GIB
    by_name: dict[str, float] = {}
    for a, m in zip(totals, ms):
        by_name[m.name] = max(by_name.get(m.name, 0.0), a)
    return MemoryEstimate(
        peak_allocated_gib=round(allocated / GIB, 3),
        peak_reserved_gib=round(reserved_gib, 3),
        capacity_gib=capacity,
        breakdown_gib={k: round(v * memory_factor / GIB, 3) for k, v in peak.parts.items()},
        headroom_gib=round(capacity - reserved_gib - CAL.cuda_context_gib, 3),
        peak_moment=peak.name,
        band_gib=[round(reserved_gib * lo, 3), round(reserved_gib * hi, 3)],
        moments_gib={k: round(v * memory_factor / GIB, 3) for k, v in by_name.items()},
    )


def conservative_headroom_of(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, seq_len: int | None = None,
                             batch: int | None = None, memory_factor: float = 1.0) -> float:
    """GiB left on the card at the band's high end, without building a MemoryEstimate (fit searches)."""
    from planner.estimator.bands import default_band_ratios

    _, reserved = peak_bytes(arch, spec, world, seq_len, batch)
    hi = round(reserved * memory_factor / GIB * default_band_ratios()[1], 3)  # as estimate_memory rounds band_gib
    return round(gpu.memory_gib - hi - CAL.cuda_context_gib, 3)


def fit_call(mem: MemoryEstimate) -> bool | str:
    """True when the band's high end (plus the CUDA context) fits the card; "tight" when the card's capacity
    falls inside the band; False when even the low end does not fit."""
    lo, hi = mem.band_gib or [mem.peak_reserved_gib, mem.peak_reserved_gib]
    if round(mem.capacity_gib - hi - CAL.cuda_context_gib, 3) >= 0:
        return True
    if round(mem.capacity_gib - lo - CAL.cuda_context_gib, 3) >= 0:
        return "tight"
    return False


def fits(mem: MemoryEstimate) -> bool | str:
    """The three-valued fit call (True / "tight" / False); see fit_call."""
    return fit_call(mem)
