"""TRL / transformers configs <-> job specs: the YAML or JSON that `trl sft --config` reads (ScriptArguments +
SFTConfig + ModelConfig in one mapping), or a TrainingArguments/SFTConfig JSON that also names the model and its
PEFT LoraConfig / BitsAndBytesConfig settings.

Keys and defaults follow TRL 0.2x (trl/trainer/sft_config.py, trl/trainer/model_config.py, 2025) and PEFT
LoraConfig / transformers BitsAndBytesConfig: model_name_or_path, dtype/torch_dtype, attn_implementation,
use_peft, lora_r (16), lora_alpha (32), lora_dropout (0.05), lora_target_modules (None: PEFT's per-model
default), load_in_4bit/8bit, bnb_4bit_quant_type, use_bnb_nested_quant (False), max_length (1024;
max_seq_length before TRL 0.20), packing (False), padding_free, bf16 (SFTConfig default: True unless fp16),
gradient_checkpointing (SFTConfig default True), learning_rate (2e-5), loss_type (TRL 1.x: chunked_nll),
plus the TrainingArguments keys.
Nested `peft_config`/`lora_config` and `quantization_config`/`bnb_config` mappings and
`model_init_kwargs` are read too.
"""
from __future__ import annotations

from typing import Any

from planner.imports import hf_args
from planner.imports.common import Mapper, attention
from train.spec import JobSpec

FORMAT = "trl"
LABEL = "TRL"
STACK = "trl"
MARKERS = ("model_name_or_path", "use_peft", "dataset_name", "dataset_config", "dataset_train_split",
           "max_length", "max_seq_length", "dataset_text_field", "padding_free", "lora_r", "lora_target_modules",
           "use_bnb_nested_quant", "bnb_4bit_quant_type", "peft_config", "lora_config", "quantization_config",
           "bnb_config", "model_init_kwargs", "torch_dtype", "attn_implementation", "completion_only_loss",
           "assistant_only_loss", "packing_strategy", "dataset_kwargs", "dataset_num_proc", "model_revision",
           "lora_task_type", "lora_modules_to_save", "activation_offloading", "loss_type") + hf_args.HF_KEYS

_REASONS: list[tuple[str, str]] = [
    ("dataset_", "data selection: the plan's size comes from --dataset-tokens"),
    ("completion_only_loss", "which tokens carry the loss: no effect on memory or speed"),
    ("assistant_only_loss", "which tokens carry the loss: no effect on memory or speed"),
    ("chat_template_path", "prompt formatting: no effect on memory or speed"),
    ("eos_token", "tokenizer tokens: no effect on the plan"),
    ("pad_token", "tokenizer tokens: no effect on the plan"),
    ("model_revision", "loading option: no effect on the plan"),
    ("trust_remote_code", "loading option: no effect on the plan"),
    ("lora_task_type", "adapter detail: no effect on memory or speed"),
    ("lora_modules_to_save", "not modelled: full trainable copies of these modules add memory the plan leaves out"),
    ("use_dora", "not modelled: DoRA's magnitude vectors and weight norms add a few % memory and time"),
    ("use_rslora", "rank scaling: no effect on memory or speed"),
    ("activation_offloading", "not modelled: offloaded activations are sized as kept on the GPU (upper bound)"),
    ("packing_strategy", "packing detail: sized as packed sequences"),
    ("eval_packing", "evaluation: not part of the training time"),
    ("gradient_checkpointing_use_reentrant", "checkpointing detail: not modelled"),
    ("ignore_bias_buffers", "DDP detail: not modelled"),
    ("bnb_4bit_compute_dtype", "compute dtype follows bf16/fp16"),
    ("bnb_4bit_quant_storage", "storage dtype of the 4-bit weights: not modelled"),
    ("bnb_4bit_quant_type", "sized as NF4"),
    ("llm_int8_", "8-bit loading detail: not modelled"),
    ("peft_config.task_type", "adapter detail: no effect on memory or speed"),
    ("peft_config.bias", "adapter detail: biases not trained by gpuplan's count"),
    ("lora_config.task_type", "adapter detail: no effect on memory or speed"),
]


def _reason(key: str) -> str | None:
    for prefix, why in _REASONS:
        if key.startswith(prefix):
            return why
    return hf_args.reason(key.split(".", 1)[0])


def _first(m: Mapper, *keys: str) -> str | None:
    for k in keys:
        if m.has(k) and m.take(k) is not None:
            return k
    for k in keys:
        m.mark(k)
    return None


def read(m: Mapper, base_dir: str) -> None:
    model_key = _first(m, "model_name_or_path", "model_id", "model")
    if model_key:
        m.set("model", m.str_(model_key), model_key)
    # PEFT: flat ModelConfig keys, or a nested LoraConfig mapping
    peft = _first(m, "peft_config", "lora_config")
    use_peft = m.bool_("use_peft", False) or peft is not None
    bnb = _first(m, "quantization_config", "bnb_config", "model_init_kwargs.quantization_config")
    p = f"{peft}." if peft else "lora_"

    def q(name: str) -> str:  # a BitsAndBytesConfig key, flat or nested
        return f"{bnb}.{name}" if bnb else name

    four, eight = m.bool_(q("load_in_4bit"), False), m.bool_(q("load_in_8bit"), False)
    if eight:
        raise m.error(q("load_in_8bit"), "8-bit LoRA is not sized by gpuplan", "use load_in_4bit (QLoRA) or neither")
    if four and not use_peft:
        raise m.error(q("load_in_4bit"), "a 4-bit model trains only adapters", "set use_peft: true (QLoRA)")
    if use_peft:
        m.set("method", "qlora" if four else "lora", q("load_in_4bit") if four else (peft or "use_peft"))
        r_key = f"{peft}.r" if peft else "lora_r"
        m.set("lora_r", m.int_(r_key), r_key)
        m.default("lora_r", 8 if peft else 16, "PEFT LoraConfig default r" if peft else "TRL's default lora_r")
        a_key = f"{p}lora_alpha" if peft else "lora_alpha"
        m.set("lora_alpha", m.int_(a_key), a_key)
        m.default("lora_alpha", 8 if peft else 32, "PEFT LoraConfig default" if peft else "TRL's default lora_alpha")
        d_key = f"{p}lora_dropout" if peft else "lora_dropout"
        m.set("lora_dropout", m.float_(d_key), d_key)
        m.default("lora_dropout", 0.0 if peft else 0.05, "PEFT's default" if peft else "TRL's default")
        t_key = f"{peft}.target_modules" if peft else "lora_target_modules"
        targets = m.names(t_key)
        if targets is None:
            m.default("lora_targets", ["q_proj", "v_proj"], "PEFT's default target modules for Llama-family models")
        elif [t.lower().replace("_", "-") for t in targets] == ["all-linear"]:
            m.set("lora_targets", "all-linear", t_key)
        else:
            m.set("lora_targets", targets, t_key)
        if four:
            dq_key = q("bnb_4bit_use_double_quant") if bnb else "use_bnb_nested_quant"
            m.set("double_quant", m.bool_(dq_key), dq_key)
            m.default("double_quant", False, "off unless use_bnb_nested_quant / bnb_4bit_use_double_quant")
        for k in ("use_dora", "use_rslora", "modules_to_save", "task_type", "bias"):
            if peft and m.has(f"{peft}.{k}"):
                m.ignore(f"{peft}.{k}", _reason("lora_" + k if k != "task_type" else "lora_task_type")
                         or "adapter detail: not modelled")
    else:
        m.set("method", "full", "use_peft", "no PEFT settings: full fine-tune")
        for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"):
            m.ignore(k, "use_peft is off: no adapter")
    for k in ("use_bnb_nested_quant", "bnb_4bit_use_double_quant"):
        if not four:
            m.ignore(k, "no 4-bit loading")

    length_key = _first(m, "max_length", "max_seq_length")
    if length_key:
        m.set("seq_len", m.int_(length_key), length_key)
    else:
        m.default("seq_len", 1024, "SFTConfig's default max_length")
    packing = m.bool_("packing")
    if packing:
        m.set("packing", True, "packing")
    elif m.bool_("padding_free", False):
        m.set("packing", True, "padding_free", "padding-free batches hold no padding, like packing")
    else:
        m.set("packing", packing, "packing")
        m.default("packing", False, "SFTConfig's default")
    hf_args.read(m, stage_defaults={"per_device_train_batch_size": 8, "num_train_epochs": 3.0},
                 gradient_checkpointing_default=True)
    loss = m.str_("loss_type")
    if "chunked_loss" not in m.fields:  # use_liger_kernel (fused linear cross-entropy) sets it above
        if loss is None:
            m.default("chunked_loss", True, "SFTConfig's default loss_type chunked_nll (TRL 1.x): cross-entropy "
                                            "in chunks; older TRL holds the whole logits (give --no-chunked-loss)")
        else:
            m.set("chunked_loss", loss.lower() == "chunked_nll", "loss_type")
    _precision(m)
    attn_key = _first(m, "attn_implementation", "model_init_kwargs.attn_implementation")
    if attn_key:
        impl = m.str_(attn_key)
        got = attention(impl or "")
        if got is None:
            raise m.error(attn_key, f"'{impl}' is not known", "use flash_attention_2, sdpa or eager")
        m.set("attention", got[0], attn_key, got[1])
    m.default("attention", "sdpa", "transformers' default attn_implementation")
    ds = m.str_("dataset_name")
    if ds:
        m.set("data.path", ds, "dataset_name")
    m.finish(_reason)


def _precision(m: Mapper) -> None:
    """The trainable weights' dtype: bf16 when the model loads in bf16 (dtype/torch_dtype bfloat16 or auto on a
    bf16 checkpoint) and bf16 is on; fp32-loaded with bf16/fp16 autocast -> bf16-mixed / fp16-mixed. SFTConfig
    turns bf16 on unless fp16 is set."""
    dkey = _first(m, "dtype", "torch_dtype", "model_init_kwargs.dtype", "model_init_kwargs.torch_dtype")
    dtype = (m.str_(dkey) or "auto").lower().replace("torch.", "") if dkey else "auto"
    fp16 = m.bool_("fp16", False)
    bf16 = m.bool_("bf16")
    if bf16 is None:
        bf16 = not fp16
    fp32_load = dtype in ("float32", "fp32")
    if fp16:
        m.set("precision", "fp16-mixed", "fp16")
    elif bf16:
        m.set("precision", "bf16-mixed" if fp32_load else "bf16", dkey if fp32_load else "bf16",
              "fp32 weights, bf16 autocast" if fp32_load else "model loaded in bf16")
    else:
        m.set("precision", "bf16" if dtype in ("bfloat16", "bf16") else "fp32", dkey or "bf16",
              "no autocast")


def export(spec: JobSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"model_name_or_path": spec.model}
    if spec.precision == "bf16-mixed":
        out["dtype"] = "float32"
    elif spec.precision == "bf16":
        out["dtype"] = "bfloat16"
    if spec.attention != "sdpa":
        out["attn_implementation"] = {"flash": "flash_attention_2", "eager": "eager"}[spec.attention]
    if spec.data.path:
        out["dataset_name"] = spec.data.path
    if spec.method != "full":
        out.update(use_peft=True, lora_r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                   lora_target_modules="all-linear" if spec.lora_targets == "all-linear" else list(spec.lora_targets))
    if spec.method == "qlora":
        out.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=spec.double_quant)
    out.update(max_length=spec.seq_len, packing=spec.packing)
    out.update(hf_args.export(spec))
    out["bf16"] = spec.precision in ("bf16", "bf16-mixed")
    out["fp16"] = spec.precision == "fp16-mixed"
    out["loss_type"] = "chunked_nll" if spec.chunked_loss else "nll"
    return out
