"""Exact parameter counts: every registry entry against transformers' own model on the meta device."""
from __future__ import annotations

import json
import warnings

import pytest

from planner import models

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

REGISTRY = json.loads(models.REGISTRY_PATH.read_text())["models"]


def _meta_model(cfg: dict):
    """The HF *ForCausalLM for a registry config, built without weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(cfg)
    model_type = values.pop("model_type")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = AutoConfig.for_model(model_type, **values)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields tied weights once


@pytest.mark.parametrize("hf_id", sorted(REGISTRY))
def test_registry_entry_total_params_equal_transformers_count(hf_id: str) -> None:
    arch = models.resolve_model(hf_id)
    model = _meta_model(REGISTRY[hf_id])
    assert arch.total_params() == _numel(model)
    # embeddings and lm_head as transformers lays them out
    emb = model.get_input_embeddings().weight.numel()
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    assert arch.embedding_params() == emb + (wpe.weight.numel() if wpe is not None else 0)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert arch.tie_embeddings == tied
    assert arch.lm_head_params() == (0 if tied else model.get_output_embeddings().weight.numel())


def test_smoke_llama_matches_the_trainers_tiny_model() -> None:
    from train.smoke import SMOKE_LLAMA_CONFIG

    arch = models.resolve_model("smoke-llama")
    assert arch.total_params() == _numel(_meta_model(SMOKE_LLAMA_CONFIG))
    assert (arch.hidden_size, arch.num_layers, arch.num_heads, arch.num_kv_heads) == (
        SMOKE_LLAMA_CONFIG["hidden_size"], SMOKE_LLAMA_CONFIG["num_hidden_layers"],
        SMOKE_LLAMA_CONFIG["num_attention_heads"], SMOKE_LLAMA_CONFIG["num_key_value_heads"])


# Parameter counts the model publishers state (model cards / safetensors index "total_size" / 2 bytes).
PUBLISHED = {
    "meta-llama/Llama-2-7b-hf": 6_738_415_616,
    "meta-llama/Llama-3.1-8B": 8_030_261_248,
    "meta-llama/Llama-3.2-1B": 1_235_814_400,
    "meta-llama/Llama-3.2-3B": 3_212_749_824,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "mistralai/Mixtral-8x7B-v0.1": 46_702_792_704,
    "Qwen/Qwen2.5-7B": 7_615_616_512,
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "microsoft/Phi-3-mini-4k-instruct": 3_821_079_552,
    "microsoft/phi-4": 14_659_507_200,
    "tiiuae/falcon-7b": 6_921_720_704,
}


@pytest.mark.parametrize("hf_id,expected", sorted(PUBLISHED.items()))
def test_total_params_match_published_sizes(hf_id: str, expected: int) -> None:
    assert models.resolve_model(hf_id).total_params() == expected


def test_mixtral_active_params_count_two_of_eight_experts() -> None:
    arch = models.resolve_model("mixtral-8x7b")
    # Mistral AI: "12.9B active parameters" of 46.7B
    assert arch.active_params() == 12_879_925_248
    expert = 3 * 4096 * 14336  # gate, up, down of one expert
    assert arch.total_params() - arch.active_params() == 32 * 6 * expert


def test_multimodal_config_uses_its_text_decoder(tmp_path) -> None:
    """A gemma-3-4b style config.json (text_config giving only a few keys) sizes the text decoder."""
    cfg = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
           "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                           "num_hidden_layers": 34, "sliding_window": 1024},
           "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    arch = models.resolve_model(str(path))
    assert arch.model_type == "gemma3_text"
    assert arch.total_params() == models.resolve_model("google/gemma-3-4b-it").total_params()
    from transformers import AutoConfig
    text_cfg = AutoConfig.for_model(**cfg["text_config"])
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(text_cfg)
    assert arch.total_params() == _numel(model)


@pytest.mark.parametrize("cfg,hf_id", [
    ({"model_type": "RefinedWeb", "n_embd": 8192, "n_head": 128, "n_head_kv": 8, "n_layer": 60,
      "vocab_size": 65024, "parallel_attn": True, "bias": False, "alibi": False}, "tiiuae/falcon-40b"),
    ({"model_type": "RefinedWebModel", "hidden_size": 4544, "n_head": 71, "n_layer": 32, "vocab_size": 65024,
      "multi_query": True, "parallel_attn": True, "bias": False, "alibi": False}, "tiiuae/falcon-7b"),
])
def test_original_falcon_configs_size_like_the_converted_ones(cfg: dict, hf_id: str) -> None:
    assert models.from_hf_config(cfg, "old", "test").total_params() == models.resolve_model(hf_id).total_params()


@pytest.mark.parametrize("cfg", [
    {"model_type": "gpt_bigcode", "n_embd": 64, "n_layer": 2, "n_head": 4},  # n_positions, vocab from defaults
    {"model_type": "gemma3_text", "hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 256},
    {"model_type": "qwen3", "vocab_size": 1000, "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 32,
     "intermediate_size": 128},  # head_dim defaults to 128 (not hidden/heads), kv heads to 32
    {"model_type": "mistral", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
     "intermediate_size": 128},  # kv heads default to 8
    {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
     "intermediate_size": 128},  # kv heads default to the attention heads
    {"model_type": "qwen3_moe", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2,
     "num_attention_heads": 8, "num_experts": 4, "moe_intermediate_size": 32},
    {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
])
def test_keys_left_out_take_the_transformers_defaults(cfg: dict) -> None:
    assert models.from_hf_config(cfg, "x", "test").total_params() == _numel(_meta_model(cfg))
