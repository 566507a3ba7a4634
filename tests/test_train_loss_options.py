"""The job spec's loss and compile options change how the trainer computes, never what it computes."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from train.loss import LOSS_CHUNKS, CausalLMLoss  # noqa: E402
from train.smoke import build_smoke_model  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_smoke_model()


def _batch(vocab: int, n: int = 2, s: int = 48):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (n, s), generator=g)
    labels = ids.clone()
    labels[:, :10] = -100  # a prompt without loss
    pos = torch.arange(s).expand(n, s)
    return ids, labels, pos


def test_chunked_loss_equals_the_one_piece_loss_and_its_gradients(model):
    vocab = model.config.vocab_size
    ids, labels, pos = _batch(vocab)
    results = []
    for chunks in (1, LOSS_CHUNKS):
        model.zero_grad()
        loss, n = CausalLMLoss(model, chunks=chunks)(ids, labels, pos)
        loss.backward()
        grad = model.get_output_embeddings().weight.grad.clone()
        results.append((loss.item(), int(n), grad))
    (l1, n1, g1), (l8, n8, g8) = results
    assert n1 == n8 == 2 * 38
    assert l8 == pytest.approx(l1, rel=1e-5)
    assert torch.allclose(g1, g8, atol=1e-5)


def test_compile_option_compiles_every_decoder_layer(model, monkeypatch):
    from train.recipe import _loss_module
    from train.spec import spec_from_dict

    monkeypatch.setenv("GPUPLAN_COMPILE_BACKEND", "eager")  # the wiring, without inductor's minutes on a CPU
    spec = spec_from_dict({"model": "smoke-llama", "compile": True, "chunked_loss": True})
    loss_model = _loss_module(model, spec)
    layers = [m for m in loss_model.decoder.modules() if type(m).__name__.endswith("DecoderLayer")]
    assert layers and all(getattr(m, "_compiled_call_impl", None) is not None for m in layers)
    assert loss_model.chunks == LOSS_CHUNKS
    ids, labels, pos = _batch(model.config.vocab_size)
    loss, n = loss_model(ids, labels, pos)
    assert torch.isfinite(loss) and int(n) == 76
