"""LoRA targets and 4-bit quantization counts against PEFT and bitsandbytes on tiny real models."""
from __future__ import annotations

import warnings

import pytest

from planner.models import from_hf_config
from train.spec import SpecError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Tiny versions of each family: same module layout as the big ones, a few thousand parameters.
TINY = {
    "llama": dict(model_type="llama", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=64, tie_word_embeddings=False),
    "qwen2": dict(model_type="qwen2", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=48, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, intermediate_size=48, tie_word_embeddings=True),
    "gemma2": dict(model_type="gemma2", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=1, head_dim=24, intermediate_size=64),
    "phi3": dict(model_type="phi3", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=64, pad_token_id=0),
    "mixtral": dict(model_type="mixtral", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=64, num_local_experts=4, num_experts_per_tok=2),
    "qwen3_moe": dict(model_type="qwen3_moe", vocab_size=128, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=64,
                      moe_intermediate_size=24, num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1,
                      mlp_only_layers=[]),
    "gpt_bigcode": dict(model_type="gpt_bigcode", vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                        bos_token_id=0, eos_token_id=0),
    "falcon": dict(model_type="falcon", vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   num_kv_heads=2, new_decoder_architecture=True, bos_token_id=0, eos_token_id=0),
    "falcon-7b-style": dict(model_type="falcon", vocab_size=128, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, multi_query=True, parallel_attn=True, bias=False,
                            bos_token_id=0, eos_token_id=0),
}


def _build(cfg: dict):
    from transformers import AutoConfig, AutoModelForCausalLM

    values = dict(cfg)
    model_type = values.pop("model_type")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values))


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_model_total_params_match_a_real_model(family: str) -> None:
    model = _build(TINY[family])
    assert from_hf_config(TINY[family], family, "test").total_params() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("family", sorted(TINY))
def test_all_linear_lora_params_equal_peft_trainable_count(family: str) -> None:
    from peft import LoraConfig, get_peft_model

    arch = from_hf_config(TINY[family], family, "test")
    model = get_peft_model(_build(TINY[family]), LoraConfig(r=4, target_modules="all-linear"))
    assert arch.lora_params(4, "all-linear") == _trainable(model)


@pytest.mark.parametrize("family,targets", [
    ("llama", ["q", "v"]), ("llama", "mlp"), ("qwen2", ["q_proj", "k_proj", "o"]), ("gemma2", ["attn"]),
    ("phi3", ["q", "v"]), ("phi3", ["gate_up_proj"]), ("gpt_bigcode", ["c_attn"]), ("gpt_bigcode", ["o_proj"]),
    ("gpt_bigcode", ["c_proj"]), ("falcon", ["query_key_value", "dense_4h_to_h"]), ("mixtral", ["q", "v"]), ("mixtral", ["mlp", "router"]),
    ("qwen3_moe", ["q", "k", "v", "o"]), ("qwen3_moe", ["gate_proj", "up_proj", "down_proj"]),
    ("llama", ["w1", "w2", "w3", "output_proj"]),
])
def test_named_targets_match_peft_on_the_mapped_modules(family: str, targets) -> None:
    from peft import LoraConfig, get_peft_model

    arch = from_hf_config(TINY[family], family, "test")
    modules = arch.peft_target_modules(targets)
    model = get_peft_model(_build(TINY[family]), LoraConfig(r=8, target_modules=modules))
    assert arch.lora_params(8, targets) == _trainable(model) > 0


def test_target_aliases_resolve_to_canonical_names() -> None:
    llama = from_hf_config(TINY["llama"], "llama", "test")
    assert llama.resolve_targets(["q", "v"]) == ["q_proj", "v_proj"]
    assert llama.resolve_targets("attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert llama.resolve_targets(["w1", "w3"]) == ["gate_proj", "up_proj"]
    assert llama.resolve_targets(["qkv_proj"]) == ["q_proj", "k_proj", "v_proj"]  # split onto separate projections
    assert llama.resolve_targets("model.layers.0.self_attn.o_proj") == ["o_proj"]
    phi3 = from_hf_config(TINY["phi3"], "phi3", "test")
    assert phi3.resolve_targets(["q", "v"]) == ["qkv_proj"]  # fused: LoRA adapts the whole qkv_proj
    assert phi3.resolve_targets("all-linear") == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    bigcode = from_hf_config(TINY["gpt_bigcode"], "bigcode", "test")
    assert bigcode.resolve_targets(["c_proj"]) == ["o_proj", "down_proj"]
    assert bigcode.peft_target_modules("all-linear") == ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]


def test_unknown_or_absent_target_names_the_field_and_the_choices() -> None:
    llama = from_hf_config(TINY["llama"], "llama", "test")
    with pytest.raises(SpecError) as err:
        llama.resolve_targets(["q_projj"])
    assert err.value.field == "lora_targets" and "q_projj" in err.value.problem and "q_proj" in err.value.fix
    bigcode = from_hf_config(TINY["gpt_bigcode"], "bigcode", "test")
    with pytest.raises(SpecError) as err:
        bigcode.resolve_targets(["gate_proj"])  # plain MLP: no gate
    assert err.value.field == "lora_targets" and "gate_proj" in err.value.problem
    with pytest.raises(SpecError):
        llama.resolve_targets([])


def test_mixtral_all_linear_includes_router_and_fused_experts() -> None:
    """PEFT 0.21 maps all-linear onto Mixtral's router and fused expert parameters (gate_up with rank 2r)."""
    arch = from_hf_config(TINY["mixtral"], "mixtral", "test")
    assert arch.resolve_targets("all-linear") == ["q_proj", "k_proj", "v_proj", "o_proj", "router", "gate_proj",
                                                  "up_proj", "down_proj"]
    experts = [g for g in arch.linear_groups() if g.role == "expert"]
    assert [(g.name, g.count, g.active) for g in experts] == [("gate_proj", 4, 2), ("up_proj", 4, 2), ("down_proj", 4, 2)]
    attention = arch.lora_params(4, "attn")
    router = 2 * 4 * (32 + 4)
    experts = 2 * (2 * 4 * 4 * (32 + 2 * 64) + 4 * 4 * (64 + 32))
    assert arch.lora_params(4, "all-linear") == attention + router + experts
    with pytest.raises(SpecError) as err:
        arch.resolve_targets(["w1"])  # gate without up: PEFT cannot split the fused parameter
    assert err.value.field == "lora_targets"


@pytest.mark.parametrize("family", ["llama", "qwen2", "phi3", "mixtral", "qwen3_moe", "gpt_bigcode", "falcon"])
def test_quantized_params_equal_bitsandbytes_linear4bit_weights(family: str, tmp_path) -> None:
    """Save a tiny model, load it 4-bit with bitsandbytes on CPU, count the weights it replaced."""
    bnb = pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    _build(TINY[family]).save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(
            tmp_path, device_map="cpu",
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16))
    quantized = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
    arch = from_hf_config(TINY[family], family, "test")
    assert arch.quantized_params() == quantized
    assert arch.unquantized_params() == arch.total_params() - quantized
