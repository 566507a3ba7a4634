"""LLaMA-Factory training YAMLs (`llamafactory-cli train config.yaml`) <-> job specs.

Keys and defaults follow LLaMA-Factory's hparams dataclasses (ModelArguments, DataArguments,
FinetuningArguments) and examples/train_lora|train_qlora|train_full/*.yaml (LLaMA-Factory 0.9.x, 2025), plus the
transformers Seq2SeqTrainingArguments it extends: model_name_or_path, stage, finetuning_type (default lora),
lora_rank (8), lora_alpha (2 x rank), lora_dropout (0), lora_target (all), quantization_bit, double_quantization
(true), cutoff_len (2048), packing/neat_packing, per_device_train_batch_size (8), gradient_accumulation_steps,
num_train_epochs (3), optim, bf16/fp16/pure_bf16, flash_attn (auto), disable_gradient_checkpointing (false),
enable_liger_kernel, deepspeed, max_samples.
"""
from __future__ import annotations

from typing import Any

from planner.imports import hf_args
from planner.imports.common import Mapper, attention
from train.spec import JobSpec

FORMAT = "llama-factory"
LABEL = "LLaMA-Factory"
STACK = "llama-factory"
MARKERS = ("finetuning_type", "stage", "template", "cutoff_len", "lora_rank", "lora_target", "quantization_bit",
           "quantization_method", "dataset_dir", "flash_attn", "max_samples", "val_size", "pure_bf16",
           "disable_gradient_checkpointing", "enable_liger_kernel", "neat_packing", "use_unsloth", "plot_loss",
           "overwrite_cache", "additional_target", "double_quantization", "upcast_layernorm", "upcast_lmhead_output",
           "use_unsloth_gc", "train_from_scratch", "mask_history", "tokenized_path", "adapter_name_or_path")

_REASONS: list[tuple[str, str]] = [
    ("template", "prompt formatting: no effect on memory or speed"),
    ("dataset", "data selection: the plan's size comes from --dataset-tokens"),
    ("tokenized_path", "data preparation: no effect on memory or speed"),
    ("overwrite_cache", "data preparation: no effect on memory or speed"),
    ("preprocessing_num_workers", "data preparation: no effect on memory or speed"),
    ("mask_history", "which tokens carry the loss: no effect on memory or speed"),
    ("train_on_prompt", "which tokens carry the loss: no effect on memory or speed"),
    ("plot_loss", "logging: no effect on the plan"),
    ("trust_remote_code", "loading option: no effect on the plan"),
    ("adapter_name_or_path", "starting adapter: no effect on the plan"),
    ("additional_target", "not modelled: full trainable copies of these modules add memory the plan leaves out"),
    ("use_dora", "not modelled: DoRA's magnitude vectors and weight norms add a few % memory and time"),
    ("use_rslora", "rank scaling: no effect on memory or speed"),
    ("pissa_", "adapter initialisation: no effect on memory or speed"),
    ("loraplus_", "per-matrix learning rates: no effect on memory or speed"),
    ("use_unsloth", "Unsloth kernels: not modelled (they use less memory than sized)"),
    ("upcast_layernorm", "fp32 norms: a small memory cost not modelled"),
    ("upcast_lmhead_output", "fp32 logits: the loss upcast is modelled by the stack"),
    ("rope_scaling", "position scaling: no effect on memory or speed at this length"),
    ("quantization_type", "quantization detail: sized as NF4"),
    ("quantization_device_map", "loading option: not modelled"),
    ("do_train", "always trains"),
    ("export_", "merging/export after training: not sized"),
    ("infer_", "inference settings: not part of training"),
]


def _reason(key: str) -> str | None:
    top = key.split(".", 1)[0]
    for prefix, reason in _REASONS:
        if top.startswith(prefix):
            return reason
    return hf_args.reason(top)


def read(m: Mapper, base_dir: str) -> None:
    m.set("model", m.str_("model_name_or_path"), "model_name_or_path")
    stage = (m.str_("stage") or "sft").lower()
    if stage not in ("sft", "pt"):
        raise m.error("stage", f"'{stage}' is not sized by gpuplan (it plans supervised fine-tuning and "
                               "pre-training; {stage} keeps a reference or reward model too)".format(stage=stage),
                      "plan it as stage: sft for a lower bound")
    ftype = (m.str_("finetuning_type") or "lora").lower()
    qbit = m.int_("quantization_bit")
    if ftype == "freeze":
        raise m.error("finetuning_type", "freeze (train only some layers) is not sized by gpuplan",
                      "plan it as full for an upper bound (--method full), or use lora")
    if ftype not in ("lora", "full"):
        raise m.error("finetuning_type", f"'{ftype}' is not sized by gpuplan", "use lora or full")
    if qbit is not None and qbit != 4:
        raise m.error("quantization_bit", f"{qbit}-bit training is not sized by gpuplan", "use 4 (QLoRA) or leave it out")
    qmethod = (m.str_("quantization_method") or "bnb").lower()
    if ftype == "full":
        if qbit:
            raise m.error("quantization_bit", "a quantized model trains only adapters", "use finetuning_type: lora")
        m.set("method", "full", "finetuning_type")
        for k in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target"):
            m.ignore(k, "finetuning_type full: LoRA settings unused")
    else:
        m.set("method", "qlora" if qbit == 4 else "lora", "quantization_bit" if qbit else "finetuning_type",
              "" if qmethod == "bnb" else f"{qmethod} 4-bit sized as bitsandbytes NF4")
        rank = m.int_("lora_rank")
        m.set("lora_r", rank, "lora_rank")
        m.default("lora_r", 8, "LLaMA-Factory's default lora_rank")
        alpha = m.int_("lora_alpha")
        if alpha is not None:
            m.set("lora_alpha", alpha, "lora_alpha")
        else:
            m.default("lora_alpha", 2 * m.fields["lora_r"], "LLaMA-Factory's default: lora_rank x 2")
        m.set("lora_dropout", m.float_("lora_dropout"), "lora_dropout")
        m.default("lora_dropout", 0.0, "LLaMA-Factory's default")
        targets = m.names("lora_target")
        if targets is None or [t.lower() for t in targets] == ["all"]:
            m.set("lora_targets", "all-linear", "lora_target" if targets else "(default)",
                  "'all': every linear layer except the output head")
        else:
            m.set("lora_targets", targets, "lora_target")
        if qbit == 4:
            dq = m.bool_("double_quantization")
            m.set("double_quant", dq, "double_quantization")
            m.default("double_quant", True, "LLaMA-Factory's default double_quantization")
    m.mark("double_quantization")

    m.set("seq_len", m.int_("cutoff_len"), "cutoff_len")
    m.default("seq_len", 2048, "LLaMA-Factory's default cutoff_len")
    packing, neat = m.bool_("packing"), m.bool_("neat_packing", False)
    if neat:
        m.set("packing", True, "neat_packing", "packing without cross-attention between examples")
    elif packing is not None:
        m.set("packing", packing, "packing")
    else:
        m.default("packing", stage == "pt", "LLaMA-Factory packs by default only for stage pt")
    samples = m.int_("max_samples")
    given = m.given
    if samples is not None:
        if given.get("mean_example_tokens") is not None and given.get("dataset_tokens") is None:
            m.set("dataset_examples", samples, "max_samples", "at most this many examples (upper bound)")
        else:
            m.note_ignored("max_samples", f"caps the data at {samples} examples but gives no length: add "
                                           "--mean-example-tokens to plan with it")

    hf_args.read(m, stage_defaults={"per_device_train_batch_size": 8, "num_train_epochs": 3.0},
                 gradient_checkpointing_default=None)
    disable_gc = m.bool_("disable_gradient_checkpointing")
    if "gradient_checkpointing" not in m.fields:
        if disable_gc is not None:
            m.set("gradient_checkpointing", not disable_gc, "disable_gradient_checkpointing")
        else:
            m.default("gradient_checkpointing", True, "LLaMA-Factory enables it unless disable_gradient_checkpointing")
    _precision(m)
    fa = m.str_("flash_attn")
    if fa is not None:
        got = attention(fa)
        if got is None:
            raise m.error("flash_attn", f"'{fa}' is not known", "use auto, fa2, sdpa or disabled")
        m.set("attention", got[0], "flash_attn", got[1])
    m.default("attention", "sdpa", "flash_attn: auto (sized as sdpa)")
    if m.bool_("enable_liger_kernel", False):
        m.set("chunked_loss", True, "enable_liger_kernel", "Liger's fused linear cross-entropy: no whole fp32 logits")
    m.default("chunked_loss", False, "no fused/chunked loss set")
    val = m.float_("val_size")
    if val is not None and 0 <= val < 1:
        m.set("data.eval_fraction", val, "val_size")
    ds = m.str_("dataset")
    if ds:
        m.set("data.path", ds.split(",")[0].strip(), "dataset", "first dataset (a name from dataset_info.json)")
    m.finish(_reason)


def _precision(m: Mapper) -> None:
    """bf16 with pure_bf16 -> bf16. bf16 alone: LoRA/QLoRA keep the frozen base in bf16 -> bf16; a full
    fine-tune upcasts the trainable weights to fp32 (LLaMA-Factory model/adapter.py, _setup_full_tuning)
    -> bf16-mixed. fp16 -> fp16-mixed; none -> fp32."""
    pure = m.bool_("pure_bf16", False)
    bf16, fp16 = m.bool_("bf16", False), m.bool_("fp16", False)
    if pure:
        m.set("precision", "bf16", "pure_bf16")
    elif bf16:
        full = m.fields.get("method") == "full"
        m.set("precision", "bf16-mixed" if full else "bf16", "bf16",
              "full fine-tune: trainable weights upcast to fp32" if full else "frozen base in bf16")
    elif fp16:
        m.set("precision", "fp16-mixed", "fp16")
    else:
        m.default("precision", "fp32", "neither bf16 nor fp16 set: fp32")


def export(spec: JobSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"model_name_or_path": spec.model, "stage": "sft", "do_train": True,
                           "finetuning_type": "full" if spec.method == "full" else "lora"}
    if spec.method != "full":
        out.update(lora_rank=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                   lora_target="all" if spec.lora_targets == "all-linear" else ",".join(spec.lora_targets))
    if spec.method == "qlora":
        out.update(quantization_bit=4, quantization_method="bnb", double_quantization=spec.double_quant)
    if spec.data.path:
        out["dataset"] = spec.data.path
    out.update(cutoff_len=spec.seq_len, packing=spec.packing)
    out.update(hf_args.export(spec, include_gc=False))
    out["disable_gradient_checkpointing"] = not spec.gradient_checkpointing
    if spec.precision == "bf16":
        if spec.method == "full":
            out["pure_bf16"] = True
        out["bf16"] = True
    elif spec.precision == "bf16-mixed":
        out["bf16"] = True
    elif spec.precision == "fp16-mixed":
        out["fp16"] = True
    out["flash_attn"] = {"flash": "fa2", "sdpa": "sdpa", "eager": "disabled"}[spec.attention]
    if spec.chunked_loss:
        out["enable_liger_kernel"] = True
    out["val_size"] = spec.data.eval_fraction
    return out
