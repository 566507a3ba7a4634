"""One optimizer step of the bundled trainer (train/recipe.py `_run`'s loop body), with the tracker on.

The order is the recipe's: for each micro batch, forward under autocast, backward of the loss scaled by
world / labels; then gradient clipping, optimizer step, zero_grad(set_to_none=True). Two micro batches
run when grad_accum > 1 (the second one starts with the first one's gradients live; later ones repeat
it). The optimizer's states exist before the step starts, as in every step after the first
(`_materialise_optimizer_states`). Phases recorded for the peak: forward, loss_forward, loss_backward, layer_recompute,
layers_backward, clip, optimizer_step.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from planner.estimator.simulate import kernels
from planner.estimator.simulate.tracker import StorageTracker
from train.spec import JobSpec


@dataclass
class StepRecord:
    tracker: StorageTracker
    categories: dict[int, str] = field(default_factory=dict)  # storage ident -> breakdown key
    excluded: set[int] = field(default_factory=set)  # idents outside the allocator (paged optimizer states)
    layer_weight_bytes: int = 0  # one decoder layer's parameters (for FSDP's all-gather)
    layer_trainable_bytes: int = 0  # one decoder layer's trainable parameters (reduce-scatter input)
    root_weight_bytes: int = 0  # parameters outside the decoder layers (embeddings, final norm, lm_head)
    trainable_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def _storage_bytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[id(st)] = st.nbytes()
    return sum(seen.values())


def _batch(spec: JobSpec, device: str) -> dict[str, torch.Tensor]:
    """A full micro batch: every row seq_len tokens of one sequence, every token labelled (the worst case)."""
    b, s = spec.batch_size, spec.seq_len
    return {"input_ids": torch.ones((b, s), dtype=torch.long, device=device),
            "labels": torch.ones((b, s), dtype=torch.long, device=device),
            "position_ids": torch.arange(s, device=device).repeat(b, 1)}


def quant_state_tensors(model: Any) -> list[torch.Tensor]:
    """bitsandbytes' 4-bit quantization state (absmax, codebook, nested absmax): weights, not parameters."""
    out: list[torch.Tensor] = []
    for m in model.modules():
        qs = getattr(getattr(m, "weight", None), "quant_state", None)
        while qs is not None:
            out.extend(v for v in vars(qs).values() if isinstance(v, torch.Tensor))
            qs = getattr(qs, "state2", None)
    return out


def _materialise_optimizer_states(optimizer: Any, params: list[torch.Tensor], tracker: StorageTracker) -> None:
    """The steady state: AdamW / SGD-momentum / 8-bit Adam create their states lazily at the first
    `optimizer.step()`, so the trainer's first step runs forward and backward without them and every later
    step holds them throughout. One step on zero gradients runs outside the count (the tracker paused), then
    the states it created are adopted as live from the start of the measured step."""
    tracker.paused += 1
    try:
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    finally:
        tracker.paused -= 1
    for state in optimizer.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor):
                tracker.adopt(v, "optimizer_state")


def run_step(spec: JobSpec, loss_model: Any, precision: Any, *, sm90: bool = False, device: str = "meta",
             workspaces: bool = True) -> StepRecord:
    """Run the step on `device` (meta; cpu in the tests); returns the trace and what each storage is."""
    from train.optim import build_optimizer

    tracker = StorageTracker(device)
    rec = StepRecord(tracker=tracker)
    paged = spec.optimizer == "paged-adamw-8bit"
    # the paged optimizer keeps its states in CUDA unified memory (outside torch's allocator): the simulation
    # builds the same 8-bit states and leaves them out of the count
    opt_spec = dataclasses.replace(spec, optimizer="adamw-8bit") if paged else spec
    params = [p for p in loss_model.parameters() if p.requires_grad]
    rec.trainable_bytes = _storage_bytes(params)
    layers = [m for m in loss_model.decoder.modules() if type(m).__name__.endswith("DecoderLayer")]
    if layers:
        rec.layer_weight_bytes = _storage_bytes(list(layers[0].parameters()))
        rec.layer_trainable_bytes = _storage_bytes([p for p in layers[0].parameters() if p.requires_grad])
        in_layers = {id(p) for m in layers for p in m.parameters()}
        rec.root_weight_bytes = _storage_bytes([p for p in loss_model.parameters() if id(p) not in in_layers])
    autocast = precision.autocast_dtype

    handles = []

    def layer_pre(_m, _a):
        if tracker.backward:
            # a checkpointed layer's recomputation (it runs under a fresh autocast of its own: the casts
            # cached by the previous layer's recomputation are dropped). Non-reentrant checkpointing stops
            # the recomputation early, so the layer's own backward ops are counted in this phase too.
            kernels.AUTOCAST.cache = {}
            tracker.set_phase("layer_recompute")

    def layer_post(_m, _a, _o):
        if tracker.backward:
            tracker.set_phase("layers_backward")

    def head_pre(_m, _a):
        if not tracker.backward:
            tracker.set_phase("loss_forward")

    def decoder_post(_m, _a, out):
        hidden = getattr(out, "last_hidden_state", None)
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(lambda g: tracker.set_phase("layers_backward"))

    def embedding_post(_m, _a, out):
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: tracker.set_phase("embedding_backward"))

    embed = loss_model.decoder.get_input_embeddings() if hasattr(loss_model.decoder, "get_input_embeddings") else None
    if embed is not None:
        handles.append(embed.register_forward_hook(embedding_post))
    for m in layers:
        handles.append(m.register_forward_pre_hook(layer_pre))
        handles.append(m.register_forward_hook(layer_post))
    handles.append(loss_model.head.register_forward_pre_hook(head_pre))
    handles.append(loss_model.decoder.register_forward_hook(decoder_post))

    with contextlib.ExitStack() as stack:
        if device == "meta":
            stack.enter_context(kernels.fused_adamw_on_meta())
        stack.enter_context(kernels.flash_sdpa(tracker))
        stack.enter_context(kernels.cuda_dropout())
        stack.enter_context(kernels.autocast_emulation())
        stack.enter_context(tracker)
        tracker.workspaces = kernels.Workspaces(tracker, sm90) if workspaces else None
        for p in loss_model.parameters():
            tracker.adopt(p, "parameter")
        for b in loss_model.buffers():
            tracker.adopt(b, "buffer")
        for t in quant_state_tensors(loss_model):
            tracker.adopt(t, "quant_state")
        optimizer = build_optimizer(params, opt_spec, "cuda")
        _materialise_optimizer_states(optimizer, params, tracker)
        micro = 2 if spec.grad_accum > 1 else 1
        for _ in range(micro):
            tracker.backward = False
            tracker.set_phase("forward")
            batch = _batch(spec, device)
            with kernels.autocast_region(autocast):
                loss_sum, _n = loss_model(**batch)
            scaled = loss_sum * 1.0
            tracker.backward = True
            tracker.set_phase("loss_backward")
            with kernels.recompute_autocast(autocast):
                scaled.backward()
            del loss_sum, scaled, batch
        tracker.backward = False
        for p in params:  # categorise before the optimizer and zero_grad free anything
            if p.grad is not None:
                ident = tracker.ident_of(p.grad)
                if ident is not None:
                    rec.categories[ident] = "gradients"
        tracker.set_phase("clip")
        torch.nn.utils.clip_grad_norm_(params, spec.max_grad_norm)
        tracker.set_phase("optimizer_step")
        optimizer.step()
        for state in optimizer.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor):
                    ident = tracker.ident_of(v)
                    if ident is not None:
                        rec.categories[ident] = "optimizer"
                        if paged:
                            rec.excluded.add(ident)
        tracker.set_phase("zero_grad")
        optimizer.zero_grad(set_to_none=True)
        tracker.workspaces = None
    for h in handles:
        h.remove()
    for p in loss_model.parameters():
        ident = tracker.ident_of(p)
        if ident is not None:
            rec.categories[ident] = "adapter" if (p.requires_grad and spec.method != "full") else "weights"
    for b in loss_model.buffers():
        ident = tracker.ident_of(b)
        if ident is not None:
            rec.categories.setdefault(ident, "weights")
    for t in quant_state_tensors(loss_model):
        ident = tracker.ident_of(t)
        if ident is not None:
            rec.categories.setdefault(ident, "weights")
    if paged:
        rec.notes.append("paged 8-bit optimizer states live in CUDA unified memory: not counted")
    return rec
