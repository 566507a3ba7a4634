"""The built-in smoke model `smoke-llama`: a tiny random Llama and a byte-level tokenizer, built locally.

Nothing is downloaded: the tokenizer is 256 byte tokens plus a few special tokens (built with the
`tokenizers` library), the model is a LlamaConfig of the shape below with weights drawn from a fixed
seed, so every machine builds bit-identical weights and a saved adapter reloads onto the same base.

This module is torch-free at import time so the planner's registry can read `SMOKE_LLAMA_CONFIG`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Iterator

SMOKE_MODEL_ID = "smoke-llama"
SMOKE_SEED = 1234  # fixed: the base weights must be identical on every build (adapters are saved without them)

# Special tokens appended after the 256 byte tokens; two reserved so the vocabulary is a multiple of 8.
SPECIAL_TOKENS = ("<|bos|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>",
                  "<|reserved_0|>", "<|reserved_1|>")

SMOKE_LLAMA_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256 + len(SPECIAL_TOKENS),  # 264
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "bos_token_id": 256,
    "eos_token_id": 257,
    "pad_token_id": 258,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}

# A minimal chat template: <|bos|><|user|>\n...<|eos|>\n<|assistant|>\n...<|eos|>\n
SMOKE_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def is_smoke_model(model: str) -> bool:
    return model == SMOKE_MODEL_ID


def build_smoke_tokenizer():
    """A byte-level tokenizer (every UTF-8 byte is one token) wrapped in PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for the bytes
    byte_chars = sorted(alphabet, key=lambda ch: _byte_of(ch))
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    for j, tok in enumerate(SPECIAL_TOKENS):
        vocab[tok] = 256 + j
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    tok.chat_template = SMOKE_CHAT_TEMPLATE
    tok.model_max_length = SMOKE_LLAMA_CONFIG["max_position_embeddings"]
    return tok


def _byte_of(ch: str) -> int:
    """GPT-2's byte -> printable character map, inverted (printable bytes map to themselves)."""
    table = _gpt2_bytes_to_unicode()
    return {v: k for k, v in table.items()}[ch]


def _gpt2_bytes_to_unicode() -> dict[int, str]:
    # The standard GPT-2 table (openai/gpt-2 encoder.py), which tokenizers' ByteLevel uses.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_smoke_model():
    """The random tiny Llama in fp32, identical on every call (seeded without touching the global RNG)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in SMOKE_LLAMA_CONFIG.items() if k not in ("architectures", "model_type")}
    config = LlamaConfig(**cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SMOKE_SEED)
        model = LlamaForCausalLM(config)
    model.config.name_or_path = SMOKE_MODEL_ID
    return model


@contextlib.contextmanager
def smoke_model_folder() -> Iterator[str]:
    """Write the smoke model and tokenizer to a temporary folder (for from_pretrained with quantization)."""
    with tempfile.TemporaryDirectory(prefix="gpuplan-smoke-llama-") as tmp:
        path = os.path.join(tmp, SMOKE_MODEL_ID)
        build_smoke_model().save_pretrained(path)
        build_smoke_tokenizer().save_pretrained(path)
        yield path
