"""The simulation's kernel shims save what the CUDA kernels save, not what CPU/meta's fallbacks would."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from planner.estimator.simulate import kernels  # noqa: E402
from planner.estimator.simulate.tracker import StorageTracker, rounded  # noqa: E402


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_training_dropout_keeps_a_one_byte_bool_mask_as_cudas_native_dropout_does(device: str) -> None:
    import torch.nn.functional as F

    n = 4096 * 64
    x = torch.ones(n, dtype=torch.float32, device=device, requires_grad=True)
    tracker = StorageTracker(device)
    with kernels.cuda_dropout(), tracker:
        out = F.dropout(x, 0.1, training=True)
        live = tracker.trace.live
    # output (fp32) + the saved bool mask: 5 B per element, not the unfused path's 8 (an fp32 noise tensor)
    assert live == rounded(4 * n) + rounded(n)
    assert out.grad_fn.name() == "NativeDropoutBackward0"
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_dropout_outside_training_or_with_p_zero_allocates_no_mask() -> None:
    import torch.nn.functional as F

    x = torch.ones(1024, device="meta", requires_grad=True)
    tracker = StorageTracker("meta")
    with kernels.cuda_dropout(), tracker:
        F.dropout(x, 0.1, training=False)
        F.dropout(x, 0.0, training=True)
    assert tracker.trace.peak.bytes <= rounded(4 * 1024)
