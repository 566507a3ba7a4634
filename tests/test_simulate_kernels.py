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


def test_grouped_query_attention_keeps_the_grouped_k_and_v_saved_for_backward_but_not_their_expansion() -> None:
    import torch.nn.functional as F

    b, hq, hkv, s, d = 1, 8, 2, 256, 64
    tracker = StorageTracker("meta")
    leaf = torch.ones((b, hq, s, d), device="meta", requires_grad=True)
    with kernels.flash_sdpa(tracker), tracker:
        tracker.adopt(leaf)
        q = leaf * 1.0
        k = leaf[:, :hkv] * 1.0
        v = leaf[:, :hkv] * 1.0
        before = tracker.trace.live
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        del k, v
        live = tracker.trace.live
        kv = 2 * rounded(4 * b * hkv * s * d)
        lse = rounded(4 * b * hq * s)
        # q, the grouped k and v, the output and its logsumexp: the 4x expanded k/v are not there
        assert live == before + rounded(4 * b * hq * s * d) + lse
        assert before == 2 * rounded(4 * b * hq * s * d) + kv  # the leaf, q, k, v
        out.sum().backward()
    assert leaf.grad is not None
