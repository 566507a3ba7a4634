"""Per-rank memory with data parallelism, applied to the simulated single-GPU moments phase by phase.

The single-GPU step is simulated; what a world of N ranks changes is modelled by mechanism (and the
output says so: estimator.sharding):

- DDP (N > 1): the reducer's flat gradient buckets, a second copy of the trainable gradients, allocated
  when DDP wraps the model and held for the run (torch/csrc/distributed/c10d/reducer.cpp
  `initialize_buckets`, gradient_as_bucket_view=False, the trainer's setting).
- FSDP (PyTorch FSDP1, FULL_SHARD, the trainer's wrapping: one unit per decoder layer plus the root):
  parameters, gradients and optimizer states are 1/N; in forward and backward each rank also holds the
  all-gathered parameters of the layer being computed and of the one being prefetched (2 layers), and the
  root unit (embeddings, final norm, lm_head) stays unsharded from forward to the end of backward (FSDP1
  does not reshard the root after forward: `_post_forward` frees only non-root handles); in backward the
  unsharded gradients of a layer wait for their reduce-scatter while the next layer's are computed
  (2 layers; from the first layer's backward on, not during the loss's backward). fsdp-offload keeps parameters, gradients and optimizer states in host memory: only the
  gathered layers, the root and the in-flight gradients are on the GPU.
- ZeRO-3 (DeepSpeed): sharded as FSDP; its prefetch and reduce buckets are modelled as the same two
  layers.
"""
from __future__ import annotations

import dataclasses

from planner.estimator.simulate.moments import BREAKDOWN_KEYS, Moment, StepMemory

_COMPUTE_PHASES = {"forward", "loss_forward", "loss_backward", "layer_recompute", "layers_backward",
                   "embedding_backward"}
# phases in which decoder layers' unsharded gradients exist (awaiting their reduce-scatter): not the loss's
# backward, which runs before any layer's backward has produced a gradient
_LAYER_GRAD_PHASES = {"layer_recompute", "layers_backward", "embedding_backward"}


@dataclasses.dataclass(frozen=True)
class ModelBytes:
    """What sharding needs to know about the model (bytes), from the simulated model at full depth."""

    layer_weights: float  # one decoder layer's parameters (4-bit data included), adapters included
    layer_trainable: float  # one decoder layer's trainable parameters
    root_weights: float  # parameters outside the decoder layers
    trainable: float  # all trainable parameters


def per_rank(mem: StepMemory, model: ModelBytes, parallel: str, world: int) -> tuple[StepMemory, str | None]:
    """The step's moments on one of `world` ranks, and a one-line description of what was modelled."""
    if world <= 1:
        return mem, None
    if parallel == "ddp":
        def change(m: Moment) -> dict[str, float]:
            bd = dict(m.breakdown)
            bd["overhead"] = bd.get("overhead", 0.0) + model.trainable
            return bd
        note = f"DDP over {world} GPUs: gradient buckets (a copy of the trainable gradients) added by mechanism"
    else:
        offload = parallel == "fsdp-offload"

        def change(m: Moment) -> dict[str, float]:
            bd = dict(m.breakdown)
            compute = m.phase in _COMPUTE_PHASES
            weights = bd.get("weights", 0.0) + bd.get("adapter", 0.0)
            if offload:
                gathered = 2 * model.layer_weights + model.root_weights if compute else 0.0
                bd["weights"], bd["adapter"] = gathered, 0.0
                bd["optimizer"] = 0.0
                bd["gradients"] = 2 * model.layer_trainable if m.phase in _LAYER_GRAD_PHASES else 0.0
                return bd
            sharded = (weights - model.root_weights) / world + model.root_weights / world
            if compute:
                sharded += 2 * model.layer_weights + model.root_weights * (1 - 1 / world)
            bd["weights"] = sharded
            bd["adapter"] = 0.0 if weights == 0 else bd.get("adapter", 0.0) / world
            bd["weights"] -= bd["adapter"]
            bd["gradients"] = bd.get("gradients", 0.0) / world
            if m.phase in _LAYER_GRAD_PHASES:
                bd["gradients"] += 2 * model.layer_trainable
            bd["optimizer"] = bd.get("optimizer", 0.0) / world
            return bd
        label = "ZeRO-3" if parallel == "zero3" else ("FSDP with CPU offload" if offload else "FSDP")
        note = (f"{label} over {world} GPUs: sharded parameters, gradients and optimizer states, two gathered "
                "layers, the unsharded root and in-flight reduce-scatter gradients applied by mechanism to the "
                "simulated single-GPU moments")
    moments = {}
    for phase, m in mem.moments.items():
        bd = {k: max(0.0, v) for k, v in change(m).items()}
        bd = {k: bd.get(k, 0.0) for k in BREAKDOWN_KEYS}
        moments[phase] = Moment(phase, m.op, sum(bd.values()), bd)
    peak = max(moments.values(), key=lambda m: m.allocated)
    ratio = mem.reserved / mem.peak.allocated if mem.peak.allocated else 1.0
    return StepMemory(moments=moments, peak=peak, reserved=peak.allocated * ratio,
                      allocator_allocated=peak.allocated), note
