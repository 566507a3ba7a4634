"""What the meta device does not do by itself: CUDA kernels' behaviour that a step's memory depends on.

Each shim is a context manager active only during a simulation:

- `flash_sdpa`: F.scaled_dot_product_attention routed to the flash kernel's interface
  (aten::_scaled_dot_product_flash_attention_for_cpu, which has meta kernels): it saves the output and
  an fp32 logsumexp (batch x heads x seq), as the CUDA flash / memory-efficient kernels do, and never the
  seq x seq score matrix that SDPA's math fallback (what meta would otherwise run) materialises.
  Grouped-query attention (enable_gqa) is served by expanding k/v outside the count: the CUDA kernel reads
  the shared heads in place; the grouped k/v themselves stay saved for backward (counted).
- `autocast_emulation`: torch.autocast does nothing to meta tensors, so the CUDA autocast that the trainer
  enters (precision.autocast_dtype) is emulated where it changes memory: F.linear casts its floating
  inputs to the autocast dtype above autograd (so autograd saves the 16-bit copies, as under real
  autocast); casts of leaf tensors that require grad are cached for the autocast region and others are
  not (aten/src/ATen/autocast_mode.cpp `cached_cast`: only leaves with requires_grad are cached), so a
  frozen fp32 lm_head is copied to 16 bits at each use. (With fp32 weights under FSDP the cache keeps every
  layer's 16-bit copy until the forward ends: fairscale added clear_autocast_cache for exactly this OOM,
  facebookresearch/fairscale#650, 2021.) SDPA's inputs and eager attention's 4-D matmuls
  are cast too (both on autocast's lower-precision list).
  torch.is_autocast_enabled() answers True inside (PEFT's LoRA layers check it to skip their own casts).
- `cuda_dropout`: F.dropout in training takes ATen's unfused path on CPU and meta (aten/src/ATen/native/
  Dropout.cpp `dropout` -> `_dropout_impl`: a noise tensor of the input's dtype, saved by the multiply for
  backward), while on CUDA `is_fused_kernel_acceptable` routes it to `native_dropout`, whose CUDA kernel
  (aten/src/ATen/native/cuda/Dropout.cu `native_dropout_cuda` / `dropout_cuda`) returns the output and a
  1-byte bool mask, the only tensor autograd saves (`native_dropout_backward(grad, mask, scale)`). The shim
  calls native_dropout on every device, so the simulation (and the CPU reference it is tested against)
  saves the CUDA kernel's bool mask: 1 byte per element instead of 4 for an fp32 LoRA input.
- `fused_adamw_on_meta`: PyTorch refuses fused AdamW for devices outside its list; meta is added
  (torch._fused_adamw_ has a meta kernel; the update is in place, no temporaries).
- kernel workspaces that are allocated inside CUDA kernels and hence invisible on meta, modelled by hand:
  * flash-attention backward: dq_accum fp32 (batch, round128(seq), heads, round32(head_dim)) and
    softmax_d fp32 (batch, heads, round128(seq)) for the duration of the backward kernel
    (PyTorch aten/src/ATen/native/transformers/cuda/flash_attn/flash_api.cpp `mha_bwd`, flash-attn 2.x);
  * cuBLAS workspace, one per handle: the forward thread's and the autograd thread's, allocated at the
    first matmul and kept: 4096 KiB x 2 + 16 KiB x 8 = 8.125 MiB before Hopper, 4096 KiB x 8 = 32 MiB on
    sm90+ (PyTorch aten/src/ATen/cuda/CublasHandlePool.cpp `getChosenWorkspaceSize`, 2.3+).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

CUBLAS_WORKSPACE_BYTES = 4096 * 1024 * 2 + 16 * 1024 * 8
CUBLAS_WORKSPACE_BYTES_SM90 = 4096 * 1024 * 8
FLASH_BWD_OP = "_scaled_dot_product_flash_attention_for_cpu_backward"
MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm", "_scaled_mm")


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def flash_backward_workspace(q_shape: tuple[int, ...]) -> int:
    """Bytes of flash-attention backward's scratch for a (batch, heads, seq, head_dim) query."""
    b, h, s, d = q_shape
    s_r = _round_up(s, 128)
    return 4 * b * s_r * h * _round_up(d, 32) + 4 * b * h * s_r


@contextlib.contextmanager
def flash_sdpa(tracker: Any) -> Iterator[None]:
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if AUTOCAST.dtype is not None:  # SDPA is on autocast's lower-precision list
            query, key, value = _cast(query), _cast(key), _cast(value)
        grouped = None
        if key.shape[1] != query.shape[1]:  # GQA: the CUDA kernel shares k/v heads in place
            rep = query.shape[1] // key.shape[1]
            grouped = (key, value)
            tracker.paused += 1
            try:
                key = key.repeat_interleave(rep, dim=1)
                value = value.repeat_interleave(rep, dim=1)
            finally:
                tracker.paused -= 1
        out, _lse = flash(query, key, value, dropout_p, is_causal and attn_mask is None, attn_mask=attn_mask,
                          scale=scale)
        if grouped is not None and out.requires_grad:
            # the expanded k/v above are not counted, but the CUDA kernel saves the grouped k/v for backward
            # (2 x batch x kv_heads x head_dim per token): keep them saved as autograd saves tensors
            # (so checkpointing drops and recomputes them like any other saved tensor)
            out = _SavedForBackward.apply(out, *grouped)
        return out

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


class _SavedForBackward(torch.autograd.Function):
    """Identity on `out` (a view: no allocation) that saves `extra` for backward, as a kernel would."""

    @staticmethod
    def forward(ctx, out, *extra):  # noqa: ANN001, ANN205
        ctx.save_for_backward(*extra)
        ctx.n_extra = len(extra)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return (grad,) + (None,) * ctx.n_extra


@contextlib.contextmanager
def cuda_dropout() -> Iterator[None]:
    import torch.nn.functional as F

    original = F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        if training and 0.0 < p < 1.0 and not inplace and input.numel() > 0:
            return torch.ops.aten.native_dropout.default(input, p, True)[0]
        return original(input, p, training, inplace)

    F.dropout = dropout
    try:
        yield
    finally:
        F.dropout = original


class _AutocastState:
    def __init__(self) -> None:
        self.dtype: torch.dtype | None = None
        self.cache: dict[int, torch.Tensor] = {}


AUTOCAST = _AutocastState()


def _cast(t: Any) -> Any:
    dt = AUTOCAST.dtype
    if not isinstance(t, torch.Tensor) or dt is None or not t.is_floating_point() or t.dtype == dt:
        return t
    if t.is_leaf and t.requires_grad:
        hit = AUTOCAST.cache.get(id(t))
        if hit is None:
            hit = AUTOCAST.cache[id(t)] = t.to(dt)
        return hit
    return t.to(dt)


@contextlib.contextmanager
def autocast_emulation() -> Iterator[None]:
    """Install the F.linear cast (inactive until `autocast_region` sets a dtype)."""
    import torch.nn.functional as F

    original = F.linear

    def linear(input, weight, bias=None):
        if AUTOCAST.dtype is not None:
            input, weight, bias = _cast(input), _cast(weight), _cast(bias)
        return original(input, weight, bias)

    original_matmul = torch.matmul

    def matmul(input, other, *, out=None):
        # eager attention's q @ k^T and probs @ v (4-D); the rotary embedding's 3-D matmul runs with autocast
        # disabled in transformers and is left alone
        if AUTOCAST.dtype is not None and out is None and input.dim() == 4 and other.dim() == 4:
            input, other = _cast(input), _cast(other)
        return original_matmul(input, other) if out is None else original_matmul(input, other, out=out)

    F.linear = linear
    torch.matmul = matmul
    try:
        yield
    finally:
        F.linear = original
        torch.matmul = original_matmul


@contextlib.contextmanager
def autocast_region(dtype_name: str | None) -> Iterator[None]:
    """One `with autocast():` of the trainer: casts on, torch.is_autocast_enabled() true, cache cleared at exit."""
    if not dtype_name:
        yield
        return
    dtype = getattr(torch, dtype_name)
    prev_enabled = torch.is_autocast_enabled("cuda")
    prev_dtype = torch.get_autocast_dtype("cuda")
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", dtype)
    AUTOCAST.dtype = dtype
    try:
        yield
    finally:
        AUTOCAST.dtype = None
        AUTOCAST.cache = {}
        torch.set_autocast_enabled("cuda", prev_enabled)
        torch.set_autocast_dtype("cuda", prev_dtype)


@contextlib.contextmanager
def recompute_autocast(dtype_name: str | None) -> Iterator[None]:
    """Backward: checkpoint recomputation runs under the autocast state of its forward (new cache)."""
    if not dtype_name:
        yield
        return
    AUTOCAST.dtype = getattr(torch, dtype_name)
    prev_enabled = torch.is_autocast_enabled("cuda")
    torch.set_autocast_enabled("cuda", True)
    try:
        yield
    finally:
        AUTOCAST.dtype = None
        AUTOCAST.cache = {}
        torch.set_autocast_enabled("cuda", prev_enabled)


@contextlib.contextmanager
def fused_adamw_on_meta() -> Iterator[None]:
    import torch.utils._foreach_utils as fu

    modules = [fu]
    for name in ("torch.optim.adam", "torch.optim.adamw", "torch.optim.optimizer"):
        try:
            modules.append(__import__(name, fromlist=["_"]))
        except ImportError:
            pass
    original = fu._get_fused_kernels_supported_devices
    patched = lambda: list(original()) + ["meta"]  # noqa: E731
    saved = [(m, m.__dict__.get("_get_fused_kernels_supported_devices")) for m in modules]
    for m, old in saved:
        if old is not None:
            m._get_fused_kernels_supported_devices = patched
    try:
        yield
    finally:
        for m, old in saved:
            if old is not None:
                m._get_fused_kernels_supported_devices = old


class Workspaces:
    """Hand-modelled kernel allocations, injected into the tracker's trace around the ops that make them."""

    def __init__(self, tracker: Any, sm90: bool) -> None:
        self.tracker = tracker
        self.cublas_bytes = CUBLAS_WORKSPACE_BYTES_SM90 if sm90 else CUBLAS_WORKSPACE_BYTES
        self.handles: set[str] = set()

    def before(self, op: str, args: tuple, backward: bool) -> int | None:
        base = op.split(".")[0]
        if base in MATMUL_OPS:
            thread = "autograd" if backward else "main"
            if thread not in self.handles:
                self.handles.add(thread)
                self.tracker.allocate(self.cublas_bytes, f"cublas_workspace ({thread} thread)")
        if base == FLASH_BWD_OP:
            q = args[1]
            return self.tracker.allocate(flash_backward_workspace(tuple(q.shape)), "flash_attention_backward_scratch")
        return None
