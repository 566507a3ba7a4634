"""Live storage bytes of a training step, op by op, on any device (meta tensors included).

A TorchDispatchMode sees every aten op. Each output whose storage it has not seen is a new allocation:
its bytes are rounded up to 512 (the CUDA caching allocator's kMinBlockSize: every block is a multiple of
512 bytes, CUDACachingAllocator.cpp `round_size`), and a weak reference on the storage records the free
when the storage dies (torch keeps a storage's Python object alive exactly as long as the storage, so the
callback fires when autograd or Python drops the last reference). Tensors that exist before the mode
starts (the model's parameters and buffers) are registered with `adopt`.

The trace — (ident, bytes, op, phase) for an allocation, (ident, 0, "", phase) for a free — is what the
caching-allocator model replays; the peak of live bytes and the op and phase at which it happened are
kept as they happen. Categories (weights, gradients, optimizer states ...) are assigned afterwards by
storage ident (`ident_of`).

This is the same accounting as torch.distributed._tools.mem_tracker.MemTracker without its per-module
bookkeeping (which made an 8B step take minutes): only the global peak is tracked.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

BLOCK = 512  # CUDACachingAllocator kMinBlockSize


def rounded(nbytes: int) -> int:
    """Bytes the CUDA caching allocator hands out for a request of `nbytes` (0 stays 0: no allocation)."""
    if nbytes <= 0:
        return 0
    return -(-nbytes // BLOCK) * BLOCK


@dataclass
class Peak:
    bytes: int = 0
    op: str = ""
    phase: str = ""
    index: int = 0  # position in the trace just after the peak allocation


@dataclass
class Trace:
    events: list[tuple[int, int, str, str]] = field(default_factory=list)
    live: int = 0
    peak: Peak = field(default_factory=Peak)
    phase_peaks: dict[str, Peak] = field(default_factory=dict)


class StorageTracker(TorchDispatchMode):
    """Counts live storage bytes; `phase` is set by the step driver (forward, loss_backward ...)."""

    def __init__(self, device: str = "meta") -> None:
        super().__init__()
        self.device = device  # only storages on this device count (host tensors, e.g. RNG states, do not)
        self.trace = Trace()
        self.phase = "setup"
        self.paused = 0
        self._ids: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._refs: dict[int, Any] = {}
        self._sizes: dict[int, int] = {}
        self._next = 1
        self.workspaces: Any = None  # kernels.Workspaces: hand-modelled allocations around some ops
        self.backward = False

    # -- registration ---------------------------------------------------------------------------------
    def ident_of(self, t: torch.Tensor) -> int | None:
        try:
            return self._ids.get(t.untyped_storage())
        except (RuntimeError, NotImplementedError):
            return None

    def adopt(self, t: torch.Tensor, op: str = "existing") -> None:
        self._track(t, op)

    def allocate(self, nbytes: int, op: str) -> int:
        """A hand-modelled allocation (a kernel's workspace): returns an ident to `release` later."""
        ident = self._next
        self._next += 1
        self._record(ident, rounded(nbytes), op)
        return ident

    def release(self, ident: int) -> None:
        self._free(ident)

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    # -- internals ------------------------------------------------------------------------------------
    def _track(self, t: torch.Tensor, op: str) -> None:
        if t.device.type != self.device:
            return
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse / opaque tensors: not modelled
            return
        if st in self._ids:
            return
        ident = self._next
        self._next += 1
        self._ids[st] = ident
        self._refs[ident] = weakref.ref(st, lambda _ref, i=ident: self._free(i))
        self._record(ident, rounded(st.nbytes()), op)

    def _record(self, ident: int, size: int, op: str) -> None:
        tr = self.trace
        self._sizes[ident] = size
        tr.events.append((ident, size, op, self.phase))
        tr.live += size
        if tr.live > tr.peak.bytes:
            tr.peak = Peak(tr.live, op, self.phase, len(tr.events))
        pp = tr.phase_peaks.get(self.phase)
        if pp is None or tr.live > pp.bytes:
            tr.phase_peaks[self.phase] = Peak(tr.live, op, self.phase, len(tr.events))

    def _free(self, ident: int) -> None:
        size = self._sizes.pop(ident, None)
        self._refs.pop(ident, None)
        if size is None:
            return
        self.trace.live -= size
        self.trace.events.append((ident, 0, "", self.phase))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is torch.ops.aten.nonzero.default or (
                func is torch.ops.aten.index.Tensor and _has_bool_index(args)):
            out = _all_true(func, args)  # meta has no data: every mask entry counts as set (all tokens labelled)
        elif func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            # .item() of a data-dependent check (e.g. transformers' "is this batch packed?"): one unpadded
            # sequence per row, every token labelled
            out = True if args[0].dtype == torch.bool else 1
        else:
            out = func(*args, **kwargs)
        if self.paused:
            return out
        name = func.__name__ if hasattr(func, "__name__") else str(func)
        scratch = self.workspaces.before(name, args, self.backward) if self.workspaces is not None else None
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t, name)
        if scratch is not None:
            self.release(scratch)
        return out


def _has_bool_index(args: tuple) -> bool:
    return len(args) > 1 and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool and i.is_meta
                                 for i in args[1] if i is not None)


def _all_true(func, args: tuple) -> torch.Tensor:
    """aten.nonzero / boolean indexing on meta tensors, as if every mask entry were True."""
    if func is torch.ops.aten.nonzero.default:
        x = args[0]
        return torch.empty((x.numel(), x.dim()), dtype=torch.long, device=x.device)
    src, indices = args[0], args[1]
    shape: list[int] = []
    dim = 0
    for i in indices:
        if i is None:
            shape.append(src.shape[dim])
            dim += 1
        elif i.dtype == torch.bool:
            shape.append(i.numel())
            dim += i.dim()
        else:
            raise NotImplementedError("mixed integer and boolean indices on meta")
    shape.extend(src.shape[dim:])
    return torch.empty(shape, dtype=src.dtype, device=src.device)
