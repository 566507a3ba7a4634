"""From a step's trace to memory moments: the peak of each phase with its breakdown, and reserved memory.

Pure Python (no torch). A `Moment` is the live storage at one phase's peak, split into the plan's breakdown
keys. Storages are categorised by what they are (parameters, .grad, optimizer state: `categories`) or,
for everything else, by the phase that allocated them: forward / layer recompute / layer backward ->
activations, the LM head and loss -> logits, kernels' workspaces and the rest -> overhead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from planner.estimator.simulate.allocator import replay

BREAKDOWN_KEYS = ("weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead")
_PHASE_CATEGORY = {"forward": "activations", "layer_recompute": "activations", "layers_backward": "activations",
                   "embedding_backward": "activations", "loss_forward": "logits", "loss_backward": "logits"}
_WORKSPACE_OPS = ("cublas_workspace", "flash_attention_backward_scratch")


@dataclass
class Moment:
    phase: str
    op: str
    allocated: float  # bytes
    breakdown: dict[str, float] = field(default_factory=dict)


@dataclass
class StepMemory:
    moments: dict[str, Moment]  # phase -> the peak within that phase
    peak: Moment
    reserved: float  # bytes, from the caching-allocator replay
    allocator_allocated: float  # the allocator's own peak of handed-out blocks (>= peak.allocated)


def _category(ident: int, op: str, phase: str, categories: dict[int, str]) -> str:
    cat = categories.get(ident)
    if cat is not None:
        return cat
    if op.startswith(_WORKSPACE_OPS):
        return "overhead"
    return _PHASE_CATEGORY.get(phase, "overhead")


def analyse(events: list[tuple[int, int, str, str]], categories: dict[int, str],
            excluded: set[int] | frozenset[int] = frozenset()) -> StepMemory:
    """Peaks per phase (with breakdowns) and the allocator replay, leaving out `excluded` storages."""
    live: dict[int, tuple[int, str]] = {}
    sums = dict.fromkeys(BREAKDOWN_KEYS, 0.0)
    total = 0
    moments: dict[str, Moment] = {}
    peak = Moment("setup", "", 0.0, dict(sums))
    replay_events: list[tuple[int, int]] = []
    for ident, size, op, phase in events:
        if ident in excluded:
            continue
        if size:
            cat = _category(ident, op, phase, categories)
            live[ident] = (size, cat)
            sums[cat] += size
            total += size
            replay_events.append((ident, size))
            m = moments.get(phase)
            if m is None or total > m.allocated:
                moments[phase] = Moment(phase, op, float(total), dict(sums))
            if total > peak.allocated:
                peak = moments[phase]
        else:
            hit = live.pop(ident, None)
            if hit is None:
                continue
            sums[hit[1]] -= hit[0]
            total -= hit[0]
            replay_events.append((ident, 0))
    stats = replay(replay_events)
    return StepMemory(moments=moments, peak=peak, reserved=float(stats.peak_reserved),
                      allocator_allocated=float(stats.peak_allocated))


def extrapolate(a: StepMemory, la: int, b: StepMemory, lb: int, layers: int) -> StepMemory:
    """Each phase's moment as an affine function of the layer count, through the simulations at `la` and `lb`
    layers, evaluated at `layers` (reserved: the larger replayed ratio). Phases seen in only one run are dropped."""
    t = (layers - lb) / (lb - la)

    def lin(x: float, y: float) -> float:
        return max(0.0, y + (y - x) * t)

    moments: dict[str, Moment] = {}
    for phase, mb in b.moments.items():
        ma = a.moments.get(phase)
        if ma is None:
            continue
        bd = {k: lin(ma.breakdown.get(k, 0.0), mb.breakdown.get(k, 0.0)) for k in BREAKDOWN_KEYS}
        moments[phase] = Moment(phase, mb.op, sum(bd.values()), bd)
    peak = max(moments.values(), key=lambda m: m.allocated)
    ratio_a = a.reserved / a.peak.allocated if a.peak.allocated else 1.0
    ratio_b = b.reserved / b.peak.allocated if b.peak.allocated else 1.0
    # reserved: the larger of the two replays' reserved/allocated ratios applied to the extrapolated peak. The
    # replayed fragmentation gap (reserved - allocated) at 2 and 4 layers is noisy (best-fit placement of a few
    # large blocks), and extrapolating it linearly multiplies that noise by the depth ratio (Llama-3.2-1B full
    # fine-tune, steady-state step: +15% at 16 layers linearly, +1% by the ratio)
    reserved = peak.allocated * max(ratio_a, ratio_b)
    alloc = max(lin(a.allocator_allocated, b.allocator_allocated), peak.allocated)
    return StepMemory(moments=moments, peak=peak, reserved=reserved, allocator_allocated=alloc)
