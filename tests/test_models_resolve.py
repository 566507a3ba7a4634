"""Resolving what the user typed: registry ids and aliases, config.json files, folders, hub ids, and errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner import models
from train.spec import SpecError

LLAMA_31_8B = 8_030_261_248


@pytest.mark.parametrize("name", [
    "meta-llama/Llama-3.1-8B", "META-LLAMA/llama-3.1-8b", "llama-3.1-8b", "llama3.1-8b",
    "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct", "deepseek-r1-distill-llama-8b",
])
def test_registry_ids_aliases_and_instruct_variants_resolve(name: str) -> None:
    arch = models.resolve_model(name)
    assert arch.total_params() == LLAMA_31_8B
    assert arch.name == name and arch.source == "registry"


@pytest.mark.parametrize("name,hf_id", [
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"),
    ("google/gemma-3-12b-it", "google/gemma-3-12b-pt"),
    ("google/gemma-2-9b-it", "google/gemma-2-9b"),
    ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-hf"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-v0.1"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-v0.3"),
    ("Qwen/Qwen3-8B-Base", "Qwen/Qwen3-8B"),
    ("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1"),
])
def test_variants_resolve_to_their_base_architecture(name: str, hf_id: str) -> None:
    assert models.resolve_model(name).hf_id == hf_id


def test_registry_covers_the_popular_families() -> None:
    ids = models.registry_ids()
    assert len(ids) >= 50
    types = {models.resolve_model(i).model_type for i in ids}
    assert types >= {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3",
                     "gpt_bigcode", "falcon"}
    assert "smoke-llama" in ids


def test_config_json_path_and_model_folder(tmp_path: Path) -> None:
    cfg = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
           "max_position_embeddings": 131072, "tie_word_embeddings": False, "_name_or_path": "my/finetune"}
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    by_file = models.resolve_model(str(folder / "config.json"))
    by_folder = models.resolve_model(str(folder))
    assert by_file.total_params() == by_folder.total_params() == LLAMA_31_8B
    assert by_folder.source == f"config.json {folder / 'config.json'}"
    assert by_folder.summary()["params_total"] == LLAMA_31_8B


def test_config_missing_a_size_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "vocab_size": 32000, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "intermediate_size": 64}))
    with pytest.raises(SpecError) as err:
        models.resolve_model(str(path))
    assert err.value.field == "model" and "hidden_size" in err.value.problem
    assert "\n" not in err.value.one_line()


@pytest.mark.parametrize("content,words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"hidden_size": 64}), "model_type"),
    (json.dumps({"model_type": "llama", "vocab_size": 10, "hidden_size": "big", "num_hidden_layers": 2,
                 "num_attention_heads": 4, "intermediate_size": 8}), "hidden_size"),
    (json.dumps({"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 3, "intermediate_size": 8}), "num_key_value_heads"),
    (json.dumps({"model_type": "mamba", "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 2,
                 "num_attention_heads": 4}), "mamba"),
])
def test_bad_config_json_is_one_model_error(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(SpecError) as err:
        models.resolve_model(str(path))
    assert err.value.field == "model" and words in err.value.one_line()


def test_missing_path_and_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nope" / "config.json"))
    with pytest.raises(SpecError, match="has no config.json"):
        models.resolve_model(str(tmp_path))


@pytest.mark.parametrize("name,suggested", [
    ("llama-3.1-7b", "llama-3.1-8b"),
    ("qwen2.5-8b", "qwen2.5-7b"),
    ("mistral-7", "mistral-7b"),
])
def test_unknown_name_suggests_close_registry_ids(name: str, suggested: str) -> None:
    with pytest.raises(SpecError) as err:
        models.resolve_model(name)
    assert err.value.field == "model" and "not in the registry" in err.value.problem
    assert suggested in err.value.fix


def test_hub_id_offline_and_uncached_is_a_model_error(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SpecError) as err:
        models.resolve_model("meta-llama/Llama-3.1-9B")
    assert err.value.field == "model"
    assert "is not in the registry and its config.json is not cached" in err.value.problem
    assert "pass a config.json path" in err.value.fix and "meta-llama/Llama-3.1-8B" in err.value.fix


def test_hub_id_in_the_hf_cache_resolves_without_network(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hf_constants

    repo = tmp_path / "models--someone--tiny-qwen"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snap / "config.json").write_text(json.dumps(
        {"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "num_hidden_layers": 24,
         "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
         "tie_word_embeddings": True}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    arch = models.resolve_model("someone/tiny-qwen")
    assert arch.total_params() == 494_032_768  # Qwen2.5-0.5B's layout
    assert arch.source == "hub someone/tiny-qwen (cache)" and arch.hf_id == "someone/tiny-qwen"


def test_summary_is_json_ready_with_the_counts() -> None:
    arch = models.resolve_model("mixtral-8x7b")
    summary = json.loads(json.dumps(arch.summary()))
    assert summary["params_total"] == 46_702_792_704 and summary["params_active"] == 12_879_925_248
    assert summary["hf_id"] == "mistralai/Mixtral-8x7B-v0.1" and summary["experts"] == 8
    assert summary["source"] == "registry"


def test_quantized_and_lm_head_split_for_a_dense_model() -> None:
    arch = models.resolve_model("llama-3.1-8b")
    per_layer = 4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336
    assert arch.quantized_params() == 32 * per_layer
    assert arch.lm_head_params() == arch.embedding_params() == 128256 * 4096
    assert arch.unquantized_params() == 2 * 128256 * 4096 + 65 * 4096  # 2 norms x 32 layers + final norm
    assert arch.lora_params(16, ["q", "v"]) == 32 * 16 * ((4096 + 4096) + (4096 + 1024))
    tied = models.resolve_model("llama-3.2-1b")
    assert tied.lm_head_params() == 0 and tied.tie_embeddings


def test_loading_the_registry_imports_no_ml_library() -> None:
    # (its speed is part of benchmarks/cli_latency.py, not asserted here)
    code = ("import sys; from planner.models import resolve_model, registry_ids; "
            "registry_ids(); a = resolve_model('Qwen/Qwen2.5-72B-Instruct'); "
            "print(a.total_params(), any(m in sys.modules for m in ('torch', 'transformers', 'huggingface_hub', "
            "'numpy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    total, heavy = int(out[0]), out[1]
    assert total == 72_706_203_648
    assert heavy == "False"


def test_unlisted_llama_style_type_is_sized_but_marked_approximate(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "olmo2", "vocab_size": 100352, "hidden_size": 4096,
                                "num_hidden_layers": 32, "num_attention_heads": 32, "intermediate_size": 11008}))
    arch = models.resolve_model(str(path))
    assert not arch.exact and "approximate" in arch.source and arch.summary()["exact"] is False
    assert models.resolve_model("llama-2-7b").exact


def test_qwen3_moe_with_dense_layers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "qwen3_moe", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 4,
                                "num_attention_heads": 4, "num_key_value_heads": 2, "mlp_only_layers": [0]}))
    with pytest.raises(SpecError, match="mixes dense and MoE layers"):
        models.resolve_model(str(path))
