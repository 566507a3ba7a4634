"""Per-rank memory under FSDP/ZeRO-3, applied by mechanism to the simulated single-GPU moments."""
from __future__ import annotations

import pytest

from planner.estimator.simulate.moments import BREAKDOWN_KEYS, Moment, StepMemory
from planner.estimator.simulate.sharding import ModelBytes, per_rank

GIB = 2 ** 30


def _moment(phase: str, **parts: float) -> Moment:
    bd = {k: parts.get(k, 0.0) * GIB for k in BREAKDOWN_KEYS}
    return Moment(phase, "op", sum(bd.values()), bd)


def _mem() -> StepMemory:
    moments = {"loss_backward": _moment("loss_backward", weights=16, logits=8),
               "layers_backward": _moment("layers_backward", weights=16, gradients=8, activations=2)}
    peak = max(moments.values(), key=lambda m: m.allocated)
    return StepMemory(moments=moments, peak=peak, reserved=peak.allocated * 1.1, allocator_allocated=peak.allocated)


MODEL = ModelBytes(layer_weights=0.5 * GIB, layer_trainable=0.5 * GIB, root_weights=2 * GIB, trainable=16 * GIB)


@pytest.mark.parametrize("parallel", ["fsdp", "zero3", "fsdp-offload"])
def test_the_losss_backward_holds_no_in_flight_layer_gradients_but_a_layers_backward_holds_two(parallel: str) -> None:
    mem, note = per_rank(_mem(), MODEL, parallel, 8)
    assert note
    assert mem.moments["loss_backward"].breakdown["gradients"] == 0.0
    sharded = 0.0 if parallel == "fsdp-offload" else 8 * GIB / 8
    assert mem.moments["layers_backward"].breakdown["gradients"] == pytest.approx(sharded + 2 * MODEL.layer_trainable)
