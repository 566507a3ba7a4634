"""torchtune recipe configs (`tune run <recipe> --config <file>`) -> job specs.

Keys follow torchtune's recipe configs (e.g. recipes/configs/llama3_1/8B_qlora_single_device.yaml,
8B_lora.yaml, 8B_full.yaml; torchtune 0.6, 2025): model._component_ names the builder
(torchtune.models.<family>.[q]lora_<family>_<size>), model.lora_attn_modules / apply_lora_to_mlp /
apply_lora_to_output / lora_rank / lora_alpha / lora_dropout, tokenizer.max_seq_len, dataset.packed,
batch_size, gradient_accumulation_steps, epochs, max_steps_per_epoch, optimizer._component_,
loss._component_ (CEWithChunkedOutputLoss), enable_activation_checkpointing, enable_activation_offloading,
dtype, compile, fsdp_cpu_offload (distributed recipes). torchtune's NF4 (torchao) quantizes its scales too,
like bitsandbytes double quantization; attention is PyTorch SDPA.
"""
from __future__ import annotations

import re

from planner.imports.common import Mapper, clean, optimizer
from train.spec import SpecError

FORMAT = "torchtune"
LABEL = "torchtune"
STACK = "torchtune"
MARKERS = ("tokenizer", "checkpointer", "loss", "enable_activation_checkpointing", "enable_activation_offloading",
           "max_steps_per_epoch", "metric_logger", "log_every_n_steps", "log_peak_memory_stats", "clip_grad_norm",
           "optimizer_in_bwd", "fsdp_cpu_offload", "profiler", "custom_sharded_layers", "save_adapter_weights_only",
           "fsdp_reshard_after_forward", "dtype", "device")

_REASONS: list[tuple[str, str]] = [
    ("tokenizer", "tokenizer files: no effect on the plan (the model's vocabulary sizes the logits)"),
    ("checkpointer", "where weights are read and written: no effect on the plan"),
    ("resume_from_checkpoint", "resuming: no effect on the plan"),
    ("save_adapter_weights_only", "checkpoint content: not sized"),
    ("dataset", "data selection: the plan's size comes from --dataset-tokens"),
    ("shuffle", "data order: no effect on the plan"),
    ("metric_logger", "logging: no effect on memory, speed or cost"),
    ("log_", "logging: no effect on memory, speed or cost"),
    ("profiler", "profiling: not part of the plan"),
    ("device", "torchtune trains on cuda"),
    ("lr_scheduler", "schedule shape: no effect on memory, speed or cost"),
    ("optimizer.", "optimizer hyper-parameters: no effect on memory or speed"),
    ("optimizer_in_bwd", "not modelled: stepping in backward frees gradients early (memory over-estimated)"),
    ("enable_activation_offloading", "not modelled: offloaded activations are sized as kept on the GPU"),
    ("custom_sharded_layers", "FSDP wrapping detail: not modelled"),
    ("fsdp_reshard_after_forward", "FSDP detail: sized as resharding"),
    ("model.lora_dropout", "regularisation: no effect on memory or speed"),
    ("model.use_dora", "not modelled: DoRA's magnitude vectors and weight norms add a few % memory and time"),
    ("model.quantize_base", "read from the builder"),
    ("seed", "reproducibility"),
    ("output_dir", "where results go"),
    ("clip_grad_norm", "clipping: no effect on memory or speed"),
    ("max_steps_per_epoch", "caps each epoch"),
    ("loss.", "loss option: no effect on the plan"),
    ("cudnn_deterministic_mode", "reproducibility: no effect on the plan"),
    ("activation_", "not modelled"),
    ("tensor_parallel", "tensor parallelism: not modelled"),
    ("data_parallel", "parallel layout: not modelled"),
]

# torchtune family module name -> the family spelling of the registry's short aliases.
_FAMILY = re.compile(r"^([a-z]+)(\d+)?(?:_(\d+))?$")


def _reason(key: str) -> str | None:
    for prefix, why in _REASONS:
        if key.startswith(prefix):
            return why
    return None


def model_from_component(component: str) -> tuple[str, str]:
    """'torchtune.models.llama3_1.qlora_llama3_1_8b' -> ('llama3.1-8b', 'qlora'): the registry's short name of the
    architecture and the method the builder implies. The builder is <prefix><family>_<size>[_instruct|_base]."""
    parts = component.split(".")
    if len(parts) < 2:
        raise SpecError("model._component_ (torchtune)", f"{clean(component)!r} is not a torchtune model builder",
                        "use e.g. torchtune.models.llama3_1.lora_llama3_1_8b, or give --model")
    family, builder = parts[-2], parts[-1]
    method = "full"
    for prefix, meth in (("qlora_", "qlora"), ("lora_", "lora"), ("qdora_", "qlora"), ("dora_", "lora")):
        if builder.startswith(prefix):
            builder, method = builder[len(prefix):], meth
            break
    size = builder[len(family) + 1:] if builder.startswith(family + "_") else builder
    size = re.sub(r"_(instruct|base|chat|it)$", "", size)
    m = _FAMILY.match(family)
    if m and m.group(2):
        fam = m.group(1) + m.group(2) + (f".{m.group(3)}" if m.group(3) else "")
    else:
        fam = family.replace("_", "-")
    size = re.sub(r"(\d)_(\d)", r"\1.\2", size).replace("_", "-")
    return f"{fam}-{size}", method


def read(m: Mapper, base_dir: str) -> None:
    from planner.models import registry_aliases

    comp = m.str_("model._component_")
    given = m.given
    if comp is None and not given.get("model"):
        raise m.error("model._component_", "missing", "name the model builder, or give --model")
    method = "full"
    if comp is not None:
        short, method = model_from_component(comp)
        hf_id = registry_aliases().get(short.lower())
        if hf_id:
            m.set("model", hf_id, "model._component_", f"builder {comp.rsplit('.', 1)[-1]} -> registry entry {hf_id}")
        elif not given.get("model"):
            raise m.error("model._component_", f"no registry entry for builder '{comp}' (read as '{short}')",
                          "give --model with the Hugging Face id of the same architecture")
    if m.bool_("model.quantize_base", False) and method == "lora":
        method = "qlora"
    m.set("method", method, "model._component_", "from the builder's name")
    if method != "full":
        m.set("lora_r", m.int_("model.lora_rank"), "model.lora_rank")
        m.default("lora_r", 8, "the torchtune LoRA builders' default lora_rank")
        m.set("lora_alpha", m.int_("model.lora_alpha"), "model.lora_alpha")
        m.default("lora_alpha", 16, "the torchtune LoRA builders' default lora_alpha")
        m.set("lora_dropout", m.float_("model.lora_dropout"), "model.lora_dropout")
        m.default("lora_dropout", 0.0, "the torchtune LoRA builders' default")
        attn = m.names("model.lora_attn_modules") or []
        targets = list(attn)
        if m.bool_("model.apply_lora_to_mlp", False):
            targets += ["gate_proj", "up_proj", "down_proj"]
        if m.bool_("model.apply_lora_to_output", False):
            m.ignore("model.apply_lora_to_output", "not modelled: a LoRA on the output head adds r x (hidden + vocab)")
        if not targets:
            raise m.error("model.lora_attn_modules", "no LoRA targets", "list e.g. [q_proj, v_proj, output_proj]")
        m.set("lora_targets", targets, "model.lora_attn_modules", "with apply_lora_to_mlp: gate/up/down")
        if method == "qlora":
            m.default("double_quant", True, "torchao NF4 quantizes its scales (like double quantization)")
    seq = m.int_("tokenizer.max_seq_len")
    if seq is not None:
        m.set("seq_len", seq, "tokenizer.max_seq_len")
    elif given.get("seq_len") is None:
        raise m.error("tokenizer.max_seq_len", "is not set, so examples are not truncated and the longest one sizes "
                                               "the memory", "set tokenizer.max_seq_len, or give --seq-len")
    packed = m.raw.get("dataset")
    if isinstance(packed, dict):
        m.set("packing", m.bool_("dataset.packed"), "dataset.packed")
        if packed.get("source"):
            m.set("data.path", str(packed["source"]), "dataset.source")
    m.default("packing", False, "torchtune's default")
    for key in ("batch_size", "epochs"):
        if not m.has(key) and given.get(key) is None:
            raise m.error(key, "missing (the recipe requires it)", f"set {key} in the config, or give --{key.replace('_', '-')}")
    m.set("batch_size", m.int_("batch_size"), "batch_size")
    m.set("grad_accum", m.int_("gradient_accumulation_steps"), "gradient_accumulation_steps")
    m.default("grad_accum", 1, "torchtune's default")
    m.set("epochs", m.float_("epochs"), "epochs")
    per_epoch = m.int_("max_steps_per_epoch")
    if per_epoch:
        m.set("max_steps", int(per_epoch * (m.fields.get("epochs") or 1)), "max_steps_per_epoch", "x epochs")
    opt = m.str_("optimizer._component_")
    if opt is not None:
        name, note = optimizer(opt)
        m.set("optimizer", name, "optimizer._component_", note)
    else:
        m.default("optimizer", "adamw", "no optimizer._component_: sized as AdamW")
    m.set("learning_rate", m.float_("optimizer.lr"), "optimizer.lr")
    m.set("weight_decay", m.float_("optimizer.weight_decay"), "optimizer.weight_decay")
    sched = m.str_("lr_scheduler._component_")
    if sched:
        for s in ("cosine", "linear", "constant"):
            if s in sched.lower():
                m.set("lr_scheduler", s, "lr_scheduler._component_")
                break
    loss = m.str_("loss._component_") or ""
    m.set("chunked_loss", "chunked" in loss.lower(), "loss._component_",
          "CEWithChunkedOutputLoss upcasts one chunk of logits at a time" if "chunked" in loss.lower() else "")
    m.set("gradient_checkpointing", m.bool_("enable_activation_checkpointing"), "enable_activation_checkpointing")
    m.default("gradient_checkpointing", False, "torchtune's default")
    dtype = (m.str_("dtype") or "bf16").lower()
    if dtype in ("bf16", "bfloat16"):
        m.set("precision", "bf16", "dtype" if m.has("dtype") else "(default)", "torchtune trains in pure bf16")
    elif dtype in ("fp32", "float32"):
        m.set("precision", "fp32", "dtype")
    else:
        raise m.error("dtype", f"'{dtype}' is not a torchtune training dtype", "use bf16 or fp32")
    m.set("compile", m.bool_("compile"), "compile")
    m.set("attention", "sdpa", "(default)", "torchtune uses PyTorch SDPA")
    if m.has("fsdp_cpu_offload") or m.has("fsdp_reshard_after_forward") or m.has("custom_sharded_layers"):
        offload = m.bool_("fsdp_cpu_offload", False)
        m.set("parallel", "fsdp-offload" if offload else "fsdp", "fsdp_cpu_offload",
              "distributed recipe: FSDP2 full shard")
    else:
        m.default("parallel", "ddp", "single-device recipe")
    m.set("max_grad_norm", m.float_("clip_grad_norm"), "clip_grad_norm")
    m.set("output_dir", m.str_("output_dir"), "output_dir")
    m.set("seed", m.int_("seed"), "seed")
    m.finish(_reason)
