"""Model architectures: exact parameter counts, linear layers and LoRA targets for decoder-only LLMs.

`resolve_model(name)` turns what the user typed (a registry id or alias, a config.json, a model folder
or a hub id) into a `ModelArch`, built from HF `config.json` values by `from_hf_config`. The bundled
registry (planner/data/models.json) stores those config values verbatim for popular models, so
`gpuplan plan` never imports transformers. Counts follow the module layout of transformers 5.x
(`sum(p.numel() for p in model.parameters())`, tied weights once); tests/test_models_counts.py checks
every registry entry against transformers on the meta device.
"""
from __future__ import annotations

import math

import difflib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from train.spec import SpecError

REGISTRY_PATH = Path(__file__).with_name("data") / "models.json"

# Canonical linear-layer names. Fused projections keep a fused canonical name (qkv_proj, gate_up_proj):
# LoRA and 4-bit quantization act on the fused module as a whole.
ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj")
MLP_NAMES = ("gate_proj", "up_proj", "gate_up_proj", "down_proj")
ROUTER = "router"

# User-facing LoRA target names (lower case) -> canonical names. Covers HF Llama-style names, torchtune
# (output_proj, w1 gate, w2 down, w3 up), Mistral's reference code (wq, wk, wv, wo), gpt_bigcode
# (c_attn, c_proj, c_fc), Falcon (query_key_value, dense, dense_h_to_4h, dense_4h_to_h) and Phi-3
# (qkv_proj, gate_up_proj).
_TARGET_ALIASES: dict[str, tuple[str, ...]] = {
    "q": ("q_proj",), "q_proj": ("q_proj",), "wq": ("q_proj",), "query": ("q_proj",),
    "k": ("k_proj",), "k_proj": ("k_proj",), "wk": ("k_proj",), "key": ("k_proj",),
    "v": ("v_proj",), "v_proj": ("v_proj",), "wv": ("v_proj",), "value": ("v_proj",),
    "o": ("o_proj",), "o_proj": ("o_proj",), "wo": ("o_proj",), "out_proj": ("o_proj",),
    "output_proj": ("o_proj",), "dense": ("o_proj",), "attn.c_proj": ("o_proj",),
    "qkv": ("qkv_proj",), "qkv_proj": ("qkv_proj",), "wqkv": ("qkv_proj",), "c_attn": ("qkv_proj",),
    "query_key_value": ("qkv_proj",),
    "gate": ("gate_proj",), "gate_proj": ("gate_proj",), "w1": ("gate_proj",),
    "up": ("up_proj",), "up_proj": ("up_proj",), "w3": ("up_proj",), "c_fc": ("up_proj",),
    "dense_h_to_4h": ("up_proj",), "fc1": ("up_proj",),
    "down": ("down_proj",), "down_proj": ("down_proj",), "w2": ("down_proj",), "dense_4h_to_h": ("down_proj",),
    "fc2": ("down_proj",), "mlp.c_proj": ("down_proj",),
    "gate_up": ("gate_up_proj",), "gate_up_proj": ("gate_up_proj",),
    "c_proj": ("o_proj", "down_proj"),  # gpt_bigcode names both attention and MLP output c_proj
    "attn": ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj"),
    "attention": ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj"),
    "self_attn": ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "gate_up_proj", "down_proj"),
    "ffn": ("gate_proj", "up_proj", "gate_up_proj", "down_proj"),
    "feed_forward": ("gate_proj", "up_proj", "gate_up_proj", "down_proj"),
    "router": ("router",),
}
# How a canonical name lands on a model that fuses (or splits) the projection.
_FUSED_INTO = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj",
               "gate_proj": "gate_up_proj", "up_proj": "gate_up_proj"}
_SPLIT_INTO = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}

# Canonical name -> the module name PEFT's target_modules matches (suffix of the module path), per family.
_HF_MODULE_NAMES: dict[str, dict[str, str]] = {
    "gpt_bigcode": {"qkv_proj": "c_attn", "o_proj": "attn.c_proj", "up_proj": "c_fc", "down_proj": "mlp.c_proj"},
    "falcon": {"qkv_proj": "query_key_value", "o_proj": "dense", "up_proj": "dense_h_to_4h",
               "down_proj": "dense_4h_to_h"},
    # PEFT >= 0.21 converts these transformers-4 names onto Mixtral's fused expert parameters.
    "mixtral": {"router": "gate", "gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"},
    "qwen3_moe": {"router": "gate"},
}


@dataclass(frozen=True)
class LinearGroup:
    name: str  # canonical module name (q_proj ... down_proj, qkv_proj/gate_up_proj when fused, "router")
    in_features: int
    out_features: int
    count: int  # instances per decoder layer (num_experts for expert MLPs, else 1)
    active: int  # instances a token passes through (experts_per_token for expert MLPs, else count)
    bias: bool
    role: str = "attention"  # "attention" | "mlp" | "expert" | "router"
    is_module: bool = True  # an nn.Linear module in transformers (False: a slice of a fused 3-D parameter)

    @property
    def weight_params(self) -> int:
        """Weights of one instance."""
        return self.in_features * self.out_features

    @property
    def params(self) -> int:
        """Weights and bias of one instance."""
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelArch:
    name: str  # what the user asked for (registry id, path or hub id)
    model_type: str  # HF model_type
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width; for MoE the per-expert width
    gated_mlp: bool  # SwiGLU/GeGLU (gate, up, down) vs plain (up, down)
    tie_embeddings: bool
    max_position_embeddings: int
    num_experts: int = 0  # 0 = dense
    experts_per_token: int = 0
    source: str = "registry"  # "registry", "config.json <path>", "hub <id> (cache)"
    hf_id: str | None = None
    # Exact-count details
    norm: str = "rmsnorm"  # "rmsnorm" (weight only) | "layernorm" (weight + bias)
    norms_per_layer: int = 2  # hidden-sized norms in each decoder layer (Gemma 2/3: 4)
    qkv_bias: bool = False  # Qwen2, gpt_bigcode
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3, Gemma 3): 2 x head_dim per layer
    learned_positions: bool = False  # gpt_bigcode wpe: max_position_embeddings x hidden
    fused_qkv: bool = False  # Phi-3 qkv_proj, gpt_bigcode c_attn, Falcon query_key_value
    fused_gate_up: bool = False  # Phi-3 gate_up_proj
    parallel_attention: bool = False  # Falcon: attention and MLP read the same input
    experts_fused: bool = False  # transformers 5 stores MoE experts as 3-D parameters, not nn.Linear modules
    bnb_quantizable: bool = True  # bitsandbytes replaces only modules whose type is exactly nn.Linear
    exact: bool = True  # False: an unlisted model_type sized as a Llama-style decoder (counts approximate)
    logit_softcap: float = 0.0  # Gemma 2 final_logit_softcapping: logits = tanh(logits / cap) * cap (0: none)

    # -- linear layers -----------------------------------------------------------------------------
    def linear_groups(self) -> list[LinearGroup]:
        """All linear layers of one decoder layer (MoE experts and router included)."""
        h, q_out, kv_out = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        groups: list[LinearGroup] = []
        if self.fused_qkv:
            groups.append(LinearGroup("qkv_proj", h, q_out + 2 * kv_out, 1, 1, self.qkv_bias))
        else:
            groups += [LinearGroup("q_proj", h, q_out, 1, 1, self.qkv_bias),
                       LinearGroup("k_proj", h, kv_out, 1, 1, self.qkv_bias),
                       LinearGroup("v_proj", h, kv_out, 1, 1, self.qkv_bias)]
        groups.append(LinearGroup("o_proj", q_out, h, 1, 1, self.o_bias))
        i = self.intermediate_size
        if self.num_experts:
            e, k, mod = self.num_experts, self.experts_per_token, not self.experts_fused
            groups.append(LinearGroup(ROUTER, h, e, 1, 1, False, "router", mod))
            groups += [LinearGroup("gate_proj", h, i, e, k, self.mlp_bias, "expert", mod),
                       LinearGroup("up_proj", h, i, e, k, self.mlp_bias, "expert", mod),
                       LinearGroup("down_proj", i, h, e, k, self.mlp_bias, "expert", mod)]
        elif self.gated_mlp and self.fused_gate_up:
            groups += [LinearGroup("gate_up_proj", h, 2 * i, 1, 1, self.mlp_bias, "mlp"),
                       LinearGroup("down_proj", i, h, 1, 1, self.mlp_bias, "mlp")]
        elif self.gated_mlp:
            groups += [LinearGroup("gate_proj", h, i, 1, 1, self.mlp_bias, "mlp"),
                       LinearGroup("up_proj", h, i, 1, 1, self.mlp_bias, "mlp"),
                       LinearGroup("down_proj", i, h, 1, 1, self.mlp_bias, "mlp")]
        else:
            groups += [LinearGroup("up_proj", h, i, 1, 1, self.mlp_bias, "mlp"),
                       LinearGroup("down_proj", i, h, 1, 1, self.mlp_bias, "mlp")]
        return groups

    # -- parameter counts --------------------------------------------------------------------------
    def _norm_params(self, width: int) -> int:
        return 2 * width if self.norm == "layernorm" else width

    def _layer_params(self, active_only: bool = False) -> int:
        n = sum(g.params * (g.active if active_only else g.count) for g in self.linear_groups())
        n += self.norms_per_layer * self._norm_params(self.hidden_size)
        if self.qk_norm:
            n += 2 * self.head_dim
        return n

    def embedding_params(self) -> int:
        """Input token embeddings (+ learned position embeddings)."""
        n = self.vocab_size * self.hidden_size
        if self.learned_positions:
            n += self.max_position_embeddings * self.hidden_size
        return n

    def lm_head_params(self) -> int:
        """Output projection; 0 when tied to the input embeddings."""
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """Exactly sum(p.numel() for p in model.parameters()) of the HF *ForCausalLM model."""
        return (self.embedding_params() + self.lm_head_params() + self.num_layers * self._layer_params()
                + self._norm_params(self.hidden_size))

    def active_params(self) -> int:
        """Parameters a token touches (MoE: only experts_per_token experts); equals total for dense models."""
        if not self.num_experts:
            return self.total_params()
        return (self.embedding_params() + self.lm_head_params() + self.num_layers * self._layer_params(True)
                + self._norm_params(self.hidden_size))

    def quantized_params(self) -> int:
        """Weights bitsandbytes 4-bit replaces: nn.Linear weights in the decoder blocks (no bias, no lm_head).

        transformers' replace_with_bnb_linear converts modules whose type is exactly nn.Linear, so fused
        3-D expert parameters (transformers 5 MoE) and nn.Linear subclasses (FalconLinear) stay 16-bit.
        """
        if not self.bnb_quantizable:
            return 0
        return self.num_layers * sum(g.weight_params * g.count for g in self.linear_groups() if g.is_module)

    def unquantized_params(self) -> int:
        """Everything 4-bit loading keeps in 16-bit: embeddings, lm_head, norms, biases (and non-Linear weights)."""
        return self.total_params() - self.quantized_params()

    def non_embedding_params(self) -> int:
        """Parameters outside the token/position embeddings and lm_head (the usual N of 6N FLOPs/token)."""
        return self.total_params() - self.embedding_params() - self.lm_head_params()

    # -- LoRA --------------------------------------------------------------------------------------
    def resolve_targets(self, targets: str | list[str]) -> list[str]:
        """'all-linear' or names/aliases -> canonical names of this model's linear groups, in layer order.

        'all-linear' follows PEFT: every linear layer in the decoder blocks, never lm_head. On MoE models whose
        experts transformers 5 fuses into 3-D parameters (Mixtral), PEFT >= 0.21 maps the v4 names (router
        `gate`, experts w1/w3/w2) onto those parameters, so experts and router are targets too.
        """
        groups = self.linear_groups()
        present = [g.name for g in groups]
        if isinstance(targets, str):
            parts = [p.strip() for p in targets.split(",") if p.strip()]
        else:
            parts = [str(p).strip() for p in targets]
        if not parts:
            raise SpecError("lora_targets", "empty", f"use all-linear or some of: {', '.join(present)}")
        wanted: set[str] = set()
        for part in parts:
            key = part.lower()
            if key in ("all-linear", "all_linear", "all"):
                wanted |= set(present)
                continue
            canon = _TARGET_ALIASES.get(key)
            if canon is None:
                # a full module path such as "model.layers.0.self_attn.q_proj" or "self_attn.q_proj"
                canon = _TARGET_ALIASES.get(key.rsplit(".", 1)[-1])
            if canon is None:
                raise SpecError("lora_targets", f"'{part}' is not a linear layer of {self.name}",
                                f"use all-linear or some of: {', '.join(present)}")
            hits: set[str] = set()
            for c in canon:
                if c in present:
                    hits.add(c)
                elif _FUSED_INTO.get(c) in present:
                    hits.add(_FUSED_INTO[c])
                elif c in _SPLIT_INTO and all(s in present for s in _SPLIT_INTO[c]):
                    hits.update(_SPLIT_INTO[c])
            if not hits:
                raise SpecError("lora_targets", f"{self.name} has no '{part}' layer",
                                f"use all-linear or some of: {', '.join(present)}")
            wanted |= hits
        if self.experts_fused and len(wanted & {"gate_proj", "up_proj"}) == 1:
            raise SpecError("lora_targets", f"{self.name} fuses its experts' gate_proj and up_proj into one parameter",
                            "target both gate_proj and up_proj (or all-linear), or neither")
        return [name for name in present if name in wanted]

    def lora_params(self, r: int, targets: str | list[str]) -> int:
        """Trainable LoRA parameters: r x (in + out) over every targeted linear instance in all layers."""
        names = set(self.resolve_targets(targets))
        groups = [g for g in self.linear_groups() if g.name in names]
        per_layer = sum(r * (g.in_features + g.out_features) * g.count for g in groups)
        if self.experts_fused and {"gate_proj", "up_proj"} <= names:
            # PEFT adapts the fused (E, 2I, H) gate_up_proj with rank 2r per expert: 2r x (H + 2I) instead of
            # r x (H + I) twice (peft/utils/transformers_weight_conversion.py, _convert_peft_config_moe).
            h, i, e = self.hidden_size, self.intermediate_size, self.num_experts
            per_layer += 2 * r * e * (h + 2 * i) - 2 * r * e * (h + i)
        return self.num_layers * per_layer

    def peft_target_modules(self, targets: str | list[str]) -> list[str]:
        """Module names to pass to peft.LoraConfig(target_modules=...) for this model's HF implementation."""
        names = _HF_MODULE_NAMES.get(self.model_type, {})
        return [names.get(c, c) for c in self.resolve_targets(targets)]

    # -- reporting ---------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """JSON-ready description (what `gpuplan plan --format json` shows under "model")."""
        return {
            "name": self.name,
            "hf_id": self.hf_id,
            "model_type": self.model_type,
            "params_total": self.total_params(),
            "params_active": self.active_params(),
            "params_embedding": self.embedding_params(),
            "params_lm_head": self.lm_head_params(),
            "params_quantized": self.quantized_params(),
            "layers": self.num_layers,
            "hidden": self.hidden_size,
            "heads": self.num_heads,
            "kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate": self.intermediate_size,
            "vocab": self.vocab_size,
            "gated_mlp": self.gated_mlp,
            "tie_embeddings": self.tie_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "experts": self.num_experts,
            "experts_per_token": self.experts_per_token,
            "source": self.source,
            "exact": self.exact,
        }


# ------------------------------------------------------------------------------------------------
# From an HF config
# ------------------------------------------------------------------------------------------------
# Defaults of transformers 5.x config classes for keys hub configs often leave out (checked with
# AutoConfig.for_model(model_type) on transformers 5.17). Only keys that change a count are listed; a
# num_key_value_heads left out means num_attention_heads for llama/phi3, a fixed number for the others.
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"tie_word_embeddings": False, "max_position_embeddings": 2048},
    "mistral": {"tie_word_embeddings": False, "max_position_embeddings": 131072, "num_key_value_heads": 8},
    "mixtral": {"tie_word_embeddings": False, "max_position_embeddings": 131072, "num_key_value_heads": 8,
                "num_local_experts": 8, "num_experts_per_tok": 2},
    "qwen2": {"tie_word_embeddings": False, "max_position_embeddings": 32768, "num_key_value_heads": 32},
    "qwen3": {"tie_word_embeddings": False, "max_position_embeddings": 32768, "head_dim": 128,
              "num_key_value_heads": 32},
    "qwen3_moe": {"tie_word_embeddings": False, "max_position_embeddings": 32768, "num_key_value_heads": 4,
                  "num_experts": 128,
                  "num_experts_per_tok": 8, "moe_intermediate_size": 768, "decoder_sparse_step": 1,
                  "intermediate_size": 6144},
    "gemma": {"tie_word_embeddings": True, "head_dim": 256, "num_key_value_heads": 16},
    "gemma2": {"tie_word_embeddings": True, "max_position_embeddings": 8192, "head_dim": 256,
               "num_key_value_heads": 4, "final_logit_softcapping": 30.0},  # Gemma2Config default
    # Gemma3TextConfig defaults: multimodal gemma-3-{4,12,27}b configs give only a few text keys.
    "gemma3_text": {"tie_word_embeddings": True, "max_position_embeddings": 131072, "head_dim": 256,
                    "vocab_size": 262208, "num_attention_heads": 8, "num_key_value_heads": 4,
                    "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26},
    "phi3": {"tie_word_embeddings": False, "max_position_embeddings": 4096},
    "falcon": {"tie_word_embeddings": True, "max_position_embeddings": 2048, "vocab_size": 65024},
    "gpt_bigcode": {"tie_word_embeddings": True, "max_position_embeddings": 1024, "multi_query": True,
                    "vocab_size": 50257},
}
# Key aliases of older or family-specific configs -> the names used below.
_KEY_ALIASES = {
    "n_embd": "hidden_size", "n_embed": "hidden_size", "d_model": "hidden_size",
    "n_layer": "num_hidden_layers", "num_layers": "num_hidden_layers", "n_layers": "num_hidden_layers",
    "n_head": "num_attention_heads", "n_heads": "num_attention_heads",
    "n_head_kv": "num_kv_heads", "n_inner": "intermediate_size", "ffn_hidden_size": "intermediate_size",
    "n_positions": "max_position_embeddings",
}
# Old Falcon checkpoints used these model_type names.
_TYPE_ALIASES = {"RefinedWebModel": "falcon", "RefinedWeb": "falcon", "gemma3": "gemma3_text"}
# Families sized exactly (checked against transformers); other types with Llama-style keys are approximate.
_EXACT_TYPES = {"llama", "gemma", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma2", "gemma3_text", "phi3",
                "gpt_bigcode", "falcon"}


def _text_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The text decoder's config of a multimodal config (Gemma 3, Llava, Mistral 3 ...), else cfg."""
    text = cfg.get("text_config")
    if isinstance(text, Mapping):
        merged = dict(text)
        if "model_type" not in merged and cfg.get("model_type") == "gemma3":
            merged["model_type"] = "gemma3_text"
        merged.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings", merged.get("tie_word_embeddings")))
        if merged["tie_word_embeddings"] is None:
            del merged["tie_word_embeddings"]
        return merged
    return dict(cfg)


# Upper bounds of config.json sizes: ~100x the largest published model's value (DeepSeek-V3: hidden 7168,
# 61 layers, 256 experts; Llama 4: vocab 202k; Gemma 3: vocab 262k); beyond them a config is broken, and
# the memory arithmetic would only produce nonsense. Default for other keys: 2**31.
_INT_CAPS = {"hidden_size": 1_000_000, "num_hidden_layers": 100_000, "num_attention_heads": 100_000,
             "num_key_value_heads": 100_000, "num_kv_heads": 100_000, "head_dim": 100_000, "vocab_size": 100_000_000,
             "intermediate_size": 10_000_000, "moe_intermediate_size": 10_000_000, "num_experts": 100_000,
             "num_local_experts": 100_000, "num_experts_per_tok": 100_000}


def _int(cfg: Mapping[str, Any], key: str, name: str, source: str, default: Any = None) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise SpecError("model", f"{source} lacks {key}",
                        "pass the model's complete config.json (from its Hugging Face repo) or a registry id")
    cap = _INT_CAPS.get(key, 2 ** 31)
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or int(value) != value or not 0 <= value <= cap):
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}..."
        raise SpecError("model", f"{source} has {key}={shown}, expected a whole number in 0..{cap}",
                        "fix config.json or use a registry id")
    return int(value)


def _flag(cfg: Mapping[str, Any], key: str, default: bool, source: str) -> bool:
    """A true/false config value. JSON true/false as transformers writes them; the strings "true"/"false"/"yes"/
    "no" and 0/1 are read for what they say (bool("no") would be True)."""
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise SpecError("model", f"{source} has {key}={str(value)[:40]!r}, expected true or false", "fix config.json")


def from_hf_config(cfg: Mapping[str, Any], name: str, source: str) -> ModelArch:
    """Build a ModelArch from an HF config.json mapping; SpecError("model", ...) names any missing key."""
    if not isinstance(cfg, Mapping):
        raise SpecError("model", f"{source} is not a JSON object", "pass a model's config.json")
    raw = _text_config(cfg)
    if not isinstance(raw.get("model_type") or "", str) or len(raw.get("model_type") or "") > 100:
        raise SpecError("model", f"{source} has a model_type that is not a name", "pass a model's config.json")
    raw_type = str(raw.get("model_type") or "")
    mtype = _TYPE_ALIASES.get(raw_type, raw_type)
    if raw_type == "RefinedWeb":  # Falcon-40B's original config: the new decoder architecture, n_head_kv groups
        raw.setdefault("new_decoder_architecture", True)
    if not mtype:
        raise SpecError("model", f"{source} lacks model_type", "pass the model's config.json from its Hugging Face repo")
    c: dict[str, Any] = dict(_TYPE_DEFAULTS.get(mtype, {}))
    for key, value in raw.items():
        if value is None:
            continue
        c[_KEY_ALIASES.get(key, key)] = value
    # A key given under its alias *and* canonical name: the canonical one wins (as in transformers).
    for key, value in raw.items():
        if key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                   "max_position_embeddings") and value is not None:
            c[key] = value
    where = f"{source}"
    hidden = _int(c, "hidden_size", name, where)
    layers = _int(c, "num_hidden_layers", name, where)
    heads = _int(c, "num_attention_heads", name, where)
    vocab = _int(c, "vocab_size", name, where)
    if heads == 0 or hidden == 0:
        raise SpecError("model", f"{source} has zero hidden_size or num_attention_heads", "fix config.json")
    kw: dict[str, Any] = {}
    if mtype == "gpt_bigcode":
        kv = 1 if _flag(c, "multi_query", True, where) else heads
        head_dim = hidden // heads
        inter = _int(c, "intermediate_size", name, where, 4 * hidden)
        kw.update(norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True, learned_positions=True,
                  fused_qkv=True, gated=False)
    elif mtype == "falcon":
        new_arch = _flag(c, "new_decoder_architecture", False, where)
        if new_arch:
            kv = _int(c, "num_kv_heads", name, where, heads)
        elif _flag(c, "multi_query", True, where):
            kv = 1
        else:
            kv = heads
        head_dim = hidden // heads
        inter = _int(c, "intermediate_size", name, where, 4 * hidden)
        bias = _flag(c, "bias", False, where)
        parallel = _flag(c, "parallel_attn", True, where)
        n_ln = c.get("num_ln_in_parallel_attn")
        if n_ln is None and new_arch:
            n_ln = 2
        norms = 2 if (not parallel or n_ln == 2) else 1
        kw.update(norm="layernorm", qkv_bias=bias, o_bias=bias, mlp_bias=bias, fused_qkv=True, gated=False,
                  parallel_attention=parallel, norms_per_layer=norms, bnb_quantizable=False)
    else:
        if mtype not in _EXACT_TYPES and "intermediate_size" not in c:
            raise SpecError("model", f"{source} has model_type '{mtype}', which gpuplan cannot size",
                            "use a Llama/Mistral/Mixtral/Qwen/Gemma/Phi-3/StarCoder/Falcon model or a registry id")
        kv = _int(c, "num_key_value_heads", name, where, heads)
        head_dim = _int(c, "head_dim", name, where, hidden // heads)
        inter = _int(c, "intermediate_size", name, where)
        attn_bias = _flag(c, "attention_bias", False, where)
        kw.update(qkv_bias=attn_bias, o_bias=attn_bias, mlp_bias=_flag(c, "mlp_bias", False, where), gated=True)
        if mtype == "qwen2":  # Qwen2Attention: q/k/v bias=True, o_proj bias=False, whatever attention_bias says
            kw.update(qkv_bias=True, o_bias=False)
        if mtype in ("mistral", "mixtral", "gemma", "gemma2", "gemma3_text", "phi3"):
            kw.update(mlp_bias=False)
        if mtype in ("mistral", "mixtral", "phi3"):
            kw.update(qkv_bias=False, o_bias=False)
        if mtype in ("gemma2", "gemma3_text"):
            kw.update(norms_per_layer=4)
        cap = c.get("final_logit_softcapping")
        if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0 and math.isfinite(cap):
            kw.update(logit_softcap=float(cap))
        if mtype in ("qwen3", "qwen3_moe", "gemma3_text"):
            kw.update(qk_norm=True)
        if mtype == "qwen3_moe":
            if c.get("mlp_only_layers") or _int(c, "decoder_sparse_step", name, where) != 1:
                raise SpecError("model", f"{source} mixes dense and MoE layers (mlp_only_layers/decoder_sparse_step)",
                                "gpuplan sizes models whose every layer is MoE; use a registry id")
            inter = _int(c, "moe_intermediate_size", name, where)
            kw.update(num_experts=_int(c, "num_experts", name, where),
                      experts_per_token=_int(c, "num_experts_per_tok", name, where), experts_fused=True)
        if mtype == "phi3":
            kw.update(fused_qkv=True, fused_gate_up=True)
        if mtype == "mixtral":
            kw.update(num_experts=_int(c, "num_local_experts", name, where),
                      experts_per_token=_int(c, "num_experts_per_tok", name, where), experts_fused=True)
    gated = kw.pop("gated")
    if head_dim <= 0 or inter <= 0 or layers <= 0 or vocab <= 0:
        raise SpecError("model", f"{source} has a zero size (head_dim, intermediate_size, num_hidden_layers or "
                                 "vocab_size)", "fix config.json")
    if kv == 0 or heads % kv:
        raise SpecError("model", f"{source} has num_key_value_heads={kv}, which does not divide "
                                 f"num_attention_heads={heads}", "fix config.json")
    if mtype not in _EXACT_TYPES:
        kw["exact"] = False
        source = f"{source} (approximate: model_type '{mtype}' sized as a Llama-style decoder)"
    max_pos = _int(c, "max_position_embeddings", name, where, 2048)
    tie = _flag(c, "tie_word_embeddings", True, where)
    return ModelArch(
        name=name, model_type=mtype, vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_heads=heads,
        num_kv_heads=kv, head_dim=head_dim, intermediate_size=inter, gated_mlp=gated, tie_embeddings=tie,
        max_position_embeddings=max_pos, source=source, hf_id=_hf_id(c.get("_name_or_path")), **kw,
    )


def _hf_id(value: Any) -> str | None:
    """config.json's _name_or_path when it is a plausible id (a list or a 10 kB string is ignored)."""
    return value if isinstance(value, str) and 0 < len(value) <= 300 and "\x00" not in value else None


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Registry:
    configs: dict[str, dict[str, Any]]  # HF id -> config values
    index: dict[str, str]  # lower-case id or alias -> HF id


@lru_cache(maxsize=1)
def _registry() -> _Registry:
    with open(REGISTRY_PATH, encoding="utf-8") as fh:
        data = json.load(fh)
    configs: dict[str, dict[str, Any]] = data["models"]
    configs["smoke-llama"] = _smoke_config()
    index: dict[str, str] = {}
    for hf_id in configs:
        index[hf_id.lower()] = hf_id
    for alias, hf_id in data["aliases"].items():
        index[alias.lower()] = hf_id
    return _Registry(configs, index)


# The trainer's tiny built-in model, used only if train/smoke.py cannot be read (keep in step with it).
_SMOKE_FALLBACK = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
                   "max_position_embeddings": 2048, "tie_word_embeddings": False}


def _smoke_config() -> dict[str, Any]:
    """train/smoke.py's SMOKE_LLAMA_CONFIG, read without importing torch (or the module at all).

    The module's top-level constant assignments are evaluated by `_const_eval` (literals, names of earlier
    constants, + - * and len()), so `"vocab_size": 256 + len(SPECIAL_TOKENS)` works.
    """
    import ast

    path = Path(__file__).resolve().parents[1] / "train" / "smoke.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return dict(_SMOKE_FALLBACK)
    env: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        try:
            env[target.id] = _const_eval(value, env)
        except ValueError:
            continue
    cfg = env.get("SMOKE_LLAMA_CONFIG")
    if not isinstance(cfg, dict):
        return dict(_SMOKE_FALLBACK)
    cfg = dict(cfg)
    cfg.setdefault("model_type", "llama")
    return cfg


def _const_eval(node: Any, env: dict[str, Any]) -> Any:
    import ast

    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_const_eval(e, env) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("dict unpacking")
        return {_const_eval(k, env): _const_eval(v, env) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        left, right = _const_eval(node.left, env), _const_eval(node.right, env)
        if isinstance(node.op, ast.Add):
            return left + right
        return left - right if isinstance(node.op, ast.Sub) else left * right
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
            and len(node.args) == 1 and not node.keywords):
        return len(_const_eval(node.args[0], env))
    raise ValueError("not a constant expression")


def registry_ids() -> list[str]:
    """HF ids (and smoke-llama) of the bundled registry, sorted."""
    return sorted(_registry().configs)


def registry_aliases() -> dict[str, str]:
    """Every lower-case name the registry answers to -> its HF id."""
    return dict(_registry().index)


# Suffixes of fine-tuned variants that share the base model's architecture.
_VARIANT_SUFFIX = re.compile(r"[-_](instruct|chat|it|hf|base|sft|dpo)([-_]v?\d+(\.\d+)*)?$", re.I)


def _lookup(name: str) -> str | None:
    reg = _registry()
    key = name.strip().lower()
    if key in reg.index:
        return reg.index[key]
    # google/gemma-3-4b-it -> google/gemma-3-4b-pt ; meta-llama/Llama-3.1-8B-Instruct -> meta-llama/Llama-3.1-8B
    candidates = [key]
    stripped = key
    for _ in range(3):
        new = _VARIANT_SUFFIX.sub("", stripped)
        if new == stripped:
            break
        stripped = new
        candidates.append(stripped)
    for cand in candidates:
        for variant in (cand, cand + "-pt", cand + "-hf", cand + "-base", cand + "-instruct", cand + "-it"):
            if variant in reg.index:
                return reg.index[variant]
    return None


# Suffixes community re-uploads add to a model's repository name without changing its architecture:
# bitsandbytes pre-quantized copies (unsloth/...-bnb-4bit, ...-unsloth-bnb-4bit), dtype copies (TheBloke/...-fp16).
# GPTQ/AWQ/GGUF copies are not matched: their weights are not what the planner sizes.
_REUPLOAD_SUFFIX = re.compile(r"[-_](unsloth[-_])?(bnb[-_])?(4bit|8bit)$|[-_](fp16|bf16|fp32|hf)$", re.I)


@lru_cache(maxsize=1)
def _tail_index() -> dict[str, str]:
    """Repository name (the part after the owner) -> HF id, for names that point at one registry entry only."""
    seen: dict[str, set[str]] = {}
    for key, hf_id in _registry().index.items():
        seen.setdefault(key.rsplit("/", 1)[-1], set()).add(hf_id)
    return {tail: next(iter(ids)) for tail, ids in seen.items() if len(ids) == 1}


def mirror_entry(name: str) -> str | None:
    """The registry entry a community mirror or re-upload names by its repository name, or None.

    NousResearch/Meta-Llama-3-8B -> meta-llama/Meta-Llama-3-8B, unsloth/llama-3-8b-Instruct-bnb-4bit ->
    meta-llama/Meta-Llama-3-8B, TheBloke/Llama-2-7B-fp16 -> meta-llama/Llama-2-7b-hf: the owner is dropped, then
    re-upload suffixes, then fine-tune suffixes (-Instruct, -chat, ...), until a registry name matches.
    """
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name.strip()):
        return None
    tails = _tail_index()
    repo = name.strip().rsplit("/", 1)[-1].lower()
    # Strip one suffix at a time, trying the exact repository names first (…-Instruct-v0.1 is its own entry
    # when the registry has it), and the registry's looser variant matching last.
    candidates = [repo]
    for pattern in (_REUPLOAD_SUFFIX, _VARIANT_SUFFIX, _REUPLOAD_SUFFIX, _VARIANT_SUFFIX):
        new = pattern.sub("", candidates[-1])
        if new != candidates[-1]:
            candidates.append(new)
    for cand in candidates:
        if cand in tails:
            return tails[cand]
    for cand in candidates:
        hit = _lookup(cand)
        if hit is not None:
            return hit
    return None


def _registry_arch(hf_id: str, name: str) -> ModelArch:
    cfg = _registry().configs[hf_id]
    arch = from_hf_config(cfg, name, "registry")
    return _with(arch, hf_id=None if hf_id == "smoke-llama" else hf_id)


def _with(arch: ModelArch, **changes: Any) -> ModelArch:
    import dataclasses

    return dataclasses.replace(arch, **changes)


def _close_matches(name: str, n: int = 3) -> list[str]:
    reg = _registry()
    key = name.strip().lower()
    pool = list(reg.index)
    hits = difflib.get_close_matches(key, pool, n=n, cutoff=0.6)
    if len(hits) < n:  # compare the part after the org too ("llama-3.1-8b" vs "meta-llama/llama-3.1-8b")
        tail = key.rsplit("/", 1)[-1]
        tails = {k.rsplit("/", 1)[-1]: k for k in pool}
        for t in difflib.get_close_matches(tail, list(tails), n=n, cutoff=0.6):
            if tails[t] not in hits:
                hits.append(tails[t])
    out: list[str] = []
    for k in hits:  # show ids as the registry spells them, shortest spelling first
        hf_id = reg.index[k]
        label = hf_id if k == hf_id.lower() else k
        if label not in out:
            out.append(label)
    return out[:n]


MAX_CONFIG_BYTES = 5_000_000  # a config.json is a few kB (multimodal ones ~50 kB)


def _read_config(path: Path, name: str) -> ModelArch:
    """Read a config.json safely: a regular UTF-8 file under 5 MB, strict JSON (no NaN, no duplicate keys,
    bounded nesting); every problem is one SpecError naming the model field."""
    from pricing.safe_read import read_json

    cfg = read_json(path, "model", MAX_CONFIG_BYTES, error=SpecError)
    return from_hf_config(cfg, name, f"config.json {path}")


def _looks_like_path(name: str) -> bool:
    """A name meant as a file or folder: not a registry id or an owner/name hub id."""
    return name.startswith((".", "/", "~")) or name.endswith(".json") or name.count("/") > 1 or "\\" in name


def resolve_model(name_or_path: str) -> ModelArch:
    """Registry id or alias -> path to a config.json -> folder holding config.json -> hub id (HF cache)."""
    name = (name_or_path or "").strip()
    if not name:
        raise SpecError("model", "missing", "give a registry id (e.g. meta-llama/Llama-3.1-8B), a config.json or a model folder")
    if len(name) > 1024 or "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise SpecError("model", f"not a model id or path ({len(name)} characters{', control characters' if len(name) <= 1024 else ''})",
                        "give a registry id (e.g. meta-llama/Llama-3.1-8B), a config.json or a model folder")
    hf_id = _lookup(name)
    if hf_id is not None:
        return _registry_arch(hf_id, name)
    path = Path(os.path.expanduser(name))
    try:
        exists = os.path.lexists(path)
        is_dir = path.is_dir()
    except OSError as exc:  # ENAMETOOLONG: a 300-character id is not a path
        raise SpecError("model", f"'{name[:60]}...' is not a model id or a readable path ({exc.strerror})",
                        "give a registry id, a hub id (owner/name), a config.json or a model folder") from None
    if exists and not is_dir:
        return _read_config(path, name)
    if is_dir:
        cfg_path = path / "config.json"
        if not os.path.lexists(cfg_path):
            raise SpecError("model", f"{path} has no config.json", "pass a model folder saved by save_pretrained, or its config.json")
        return _read_config(cfg_path, name)
    if _looks_like_path(name):
        raise SpecError("model", f"{name} does not exist", "check the path, or give a registry id or hub id")
    mirrored = mirror_entry(name)
    if mirrored is not None:
        return _with(_registry_arch(mirrored, name),
                     source=f"registry entry {mirrored} (matched by repository name: a mirror or re-upload of it)")
    close = _close_matches(name)
    suggestion = f"use one of: {', '.join(close)}" if close else "use a registry id such as meta-llama/Llama-3.1-8B"
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name):
        if len(name) > 96:  # the hub's limit on repo ids (huggingface_hub validate_repo_id)
            raise SpecError("model", f"'{name[:60]}...' is {len(name)} characters, over the hub's 96 for an id",
                            "check the id, or pass a config.json path or a model folder")
        return _from_hub(name, suggestion)
    raise SpecError("model", f"'{name}' is not in the registry",
                    f"{suggestion}, or pass a config.json path, a model folder or a hub id (owner/name)")


def _from_hub(repo_id: str, suggestion: str) -> ModelArch:
    """Fetch config.json with huggingface_hub (HF cache first; the network only if allowed)."""
    not_cached = SpecError("model", f"'{repo_id}' is not in the registry and its config.json is not cached",
                           f"pass a config.json path, run once with network to cache it, or {suggestion}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise not_cached from None
    try:
        local = hf_hub_download(repo_id, "config.json", local_files_only=True)
        return _with(_read_config(Path(local), repo_id), source=f"hub {repo_id} (cache)", hf_id=repo_id)
    except SpecError:
        raise
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline:
        raise not_cached
    try:
        local = hf_hub_download(repo_id, "config.json", etag_timeout=5)
    except Exception as exc:  # noqa: BLE001 - every hub failure ends the same way for the user
        kind = type(exc).__name__
        if kind in ("GatedRepoError",):
            raise SpecError("model", f"'{repo_id}' is gated on the Hugging Face hub",
                            "accept its license and run `huggingface-cli login`, or pass its config.json path") from None
        if kind in ("RepositoryNotFoundError",):
            raise SpecError("model", f"'{repo_id}' is not in the registry nor on the Hugging Face hub",
                            f"check the spelling, or {suggestion}") from None
        raise not_cached from None
    return _with(_read_config(Path(local), repo_id), source=f"hub {repo_id}", hf_id=repo_id)
