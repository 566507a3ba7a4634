"""axolotl YAML configs (`axolotl train config.yml`) <-> job specs.

Keys and defaults follow axolotl's documented config reference (docs/config-reference.qmd, AxolotlInputConfig,
axolotl 0.10+, 2025; defaults from AxolotlInputConfig: sequence_len 512, bf16 auto, micro_batch_size 1,
num_epochs 1, gradient_checkpointing false): base_model, adapter (lora | qlora; absent = full fine-tune), load_in_4bit/8bit,
lora_r/alpha/dropout, lora_target_modules/lora_target_linear, sequence_len, sample_packing, micro_batch_size,
gradient_accumulation_steps, num_epochs, optimizer, bf16/fp16, gradient_checkpointing, flash_attention /
sdp_attention / xformers_attention, deepspeed, fsdp/fsdp_config, datasets.
"""
from __future__ import annotations

from typing import Any

from planner.imports.common import Mapper, attention, deepspeed_parallel, fsdp_parallel, optimizer
from train.spec import JobSpec

FORMAT = "axolotl"
LABEL = "axolotl"
STACK = "axolotl"
# Keys only axolotl writes (detection).
MARKERS = ("base_model", "adapter", "sequence_len", "micro_batch_size", "num_epochs", "sample_packing",
           "lora_target_linear", "lora_target_modules", "datasets", "pad_to_sequence_len", "base_model_config",
           "dataset_prepared_path", "val_set_size", "wandb_project", "load_in_4bit", "flash_attention",
           "sdp_attention", "xformers_attention", "special_tokens", "train_on_inputs", "strict")

# datasets[].type -> the bundled trainer's data.format
_DATA_TYPES = {"alpaca": "instruction", "alpaca_chat": "instruction", "chat_template": "chat", "sharegpt": "chat",
               "completion": "text", "pretrain": "text", "input_output": "instruction"}

_REASONS: list[tuple[str, str]] = [
    ("wandb_", "experiment tracking: no effect on memory, speed or cost"),
    ("mlflow_", "experiment tracking: no effect on memory, speed or cost"),
    ("comet_", "experiment tracking: no effect on memory, speed or cost"),
    ("use_wandb", "experiment tracking: no effect on memory, speed or cost"),
    ("hub_", "uploading results: no effect on memory, speed or cost"),
    ("push_", "uploading results: no effect on memory, speed or cost"),
    ("tokenizer", "tokenizer choice: no effect on the plan (the model's vocabulary sizes the logits)"),
    ("model_type", "loader class: the architecture comes from base_model"),
    ("base_model_config", "the architecture comes from base_model"),
    ("trust_remote_code", "loading option: no effect on the plan"),
    ("dataset_", "data preparation: no effect on memory or speed"),
    ("datasets", "data preparation: no effect on memory or speed"),
    ("test_datasets", "evaluation data: not part of the training time"),
    ("shuffle_", "data order: no effect on the plan"),
    ("chat_template", "prompt formatting: no effect on memory or speed"),
    ("default_system_message", "prompt formatting: no effect on memory or speed"),
    ("special_tokens", "tokenizer tokens: no effect on the plan"),
    ("tokens", "tokenizer tokens: no effect on the plan"),
    ("train_on_inputs", "which tokens carry the loss: no effect on memory or speed"),
    ("group_by_length", "batch ordering: no effect on the sized step"),
    ("pad_to_sequence_len", "the plan already sizes every micro batch at the full sequence length"),
    ("eval_", "evaluation: not part of the training time"),
    ("evals_per_epoch", "evaluation: not part of the training time"),
    ("do_bench_eval", "evaluation: not part of the training time"),
    ("save", "checkpoint saving: not sized"),
    ("resume_from_checkpoint", "resuming: no effect on the plan"),
    ("auto_resume_from_checkpoints", "resuming: no effect on the plan"),
    ("early_stopping_patience", "may stop early: the plan prices the full run"),
    ("local_rank", "set by the launcher"),
    ("logging_steps", "logging: no effect on memory, speed or cost"),
    ("strict", "config checking: no effect on the plan"),
    ("debug", "debugging: no effect on the plan"),
    ("warmup_steps", "schedule shape: no effect on memory, speed or cost"),
    ("cosine_", "schedule shape: no effect on memory, speed or cost"),
    ("lr_scheduler_kwargs", "schedule shape: no effect on memory, speed or cost"),
    ("adam_", "optimizer hyper-parameters: no effect on memory or speed"),
    ("lora_model_dir", "starting adapter: no effect on the plan"),
    ("lora_fan_in_fan_out", "weight layout: no effect on the plan"),
    ("lora_modules_to_save", "not modelled: full trainable copies of these modules add memory the plan leaves out"),
    ("peft_use_dora", "not modelled: DoRA's magnitude vectors and weight norms add a few % memory and time"),
    ("peft_use_rslora", "rank scaling: no effect on memory or speed"),
    ("peft_", "adapter detail: not modelled"),
    ("unsloth_", "Unsloth kernels: not modelled (they use less memory than sized)"),
    ("liger_", "Liger kernels for norms/RoPE/GLU: small savings not modelled"),
    ("flash_attn_", "fused flash-attn kernels for norms/MLP: small savings not modelled"),
    ("gradient_checkpointing_kwargs", "checkpointing detail: not modelled"),
    ("ddp_", "DDP communication tuning: not modelled"),
    ("dataloader_", "data loading: not modelled"),
    ("gpu_memory_limit", "loading cap: not modelled"),
    ("lora_on_cpu", "loading option: not modelled"),
    ("neftune_noise_alpha", "embedding noise: no effect on memory or speed"),
    ("seed", ""),
]


def _reason(key: str) -> str | None:
    top = key.split(".", 1)[0]
    for prefix, reason in _REASONS:
        if top.startswith(prefix) and reason:
            return reason
    return None


def read(m: Mapper, base_dir: str) -> None:
    """Map an axolotl config onto job-spec fields (into m.fields)."""
    m.set("model", m.str_("base_model"), "base_model")
    rl = m.str_("rl")
    if rl:
        raise m.error("rl", f"'{rl}' training is not sized by gpuplan (it keeps a reference or reward model too)",
                      "plan the supervised equivalent (drop rl) for a lower bound")
    adapter = (m.str_("adapter") or "").strip().lower()
    four, eight = m.bool_("load_in_4bit", False), m.bool_("load_in_8bit", False)
    if eight:
        raise m.error("load_in_8bit", "8-bit LoRA is not sized by gpuplan",
                      "use adapter: qlora with load_in_4bit: true, or plain lora, or give --method")
    if adapter in ("", "none", "full"):
        if four:
            raise m.error("load_in_4bit", "4-bit loading needs an adapter", "set adapter: qlora")
        m.set("method", "full", "adapter", "no adapter: full fine-tune")
        for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_target_linear"):
            m.ignore(k, "no adapter (full fine-tune): unused")
    elif adapter == "qlora" or (adapter == "lora" and four):
        m.set("method", "qlora", "adapter", "" if adapter == "qlora" else "lora with load_in_4bit")
    elif adapter == "lora":
        m.set("method", "lora", "adapter")
    else:
        raise m.error("adapter", f"'{adapter}' is not sized by gpuplan", "use lora or qlora, or leave it out for full")
    if adapter not in ("", "none", "full"):
        m.set("lora_r", m.int_("lora_r"), "lora_r")
        m.set("lora_alpha", m.int_("lora_alpha"), "lora_alpha")
        m.set("lora_dropout", m.float_("lora_dropout"), "lora_dropout")
        if m.bool_("lora_target_linear", False):
            m.set("lora_targets", "all-linear", "lora_target_linear")
            m.mark("lora_target_modules")
        else:
            targets = m.names("lora_target_modules")
            if targets is None:
                # axolotl passes target_modules=None to PEFT, which falls back to its per-model default
                # (q_proj, v_proj for Llama/Mistral/Qwen: peft.utils.constants, 2025).
                m.default("lora_targets", ["q_proj", "v_proj"], "PEFT's default for Llama-family models")
            else:
                m.set("lora_targets", targets, "lora_target_modules")
    bnb = m.take("bnb_config_kwargs", {})
    if isinstance(bnb, dict) and "bnb_4bit_use_double_quant" in bnb:
        m.set("double_quant", m.bool_("bnb_config_kwargs.bnb_4bit_use_double_quant"),
              "bnb_config_kwargs.bnb_4bit_use_double_quant")
    if isinstance(bnb, dict):
        for k in bnb:
            if k != "bnb_4bit_use_double_quant":
                m.ignore(f"bnb_config_kwargs.{k}", "quantization detail: sized as NF4")
    if m.fields.get("method") == "qlora":
        m.default("double_quant", True, "axolotl sets bnb_4bit_use_double_quant: true")

    seq = m.int_("sequence_len")
    if seq is not None:
        m.set("seq_len", seq, "sequence_len")
    else:
        m.default("seq_len", 512, "axolotl's default sequence_len (AxolotlInputConfig)")
    m.set("packing", m.bool_("sample_packing"), "sample_packing")
    m.default("packing", False, "axolotl's default")
    # axolotl needs two of micro_batch_size, gradient_accumulation_steps and batch_size (= micro x accum x GPUs);
    # the third follows, here on one GPU (a different GPU count changes the global batch, as in axolotl).
    mbs, ga, total = m.int_("micro_batch_size"), m.int_("gradient_accumulation_steps"), m.int_("batch_size")
    if mbs is not None:
        m.set("batch_size", mbs, "micro_batch_size")
    elif total is not None and ga:
        m.set("batch_size", max(1, total // ga), "batch_size", "batch_size / gradient_accumulation_steps on one GPU")
    m.default("batch_size", 1, "axolotl's default micro_batch_size")
    if ga is not None:
        m.set("grad_accum", ga, "gradient_accumulation_steps")
    elif total is not None:
        m.set("grad_accum", max(1, total // m.fields["batch_size"]), "batch_size",
              "batch_size / micro_batch_size on one GPU")
    m.default("grad_accum", 1, "axolotl's default")
    m.set("epochs", m.float_("num_epochs"), "num_epochs")
    m.default("epochs", 1.0, "axolotl's default num_epochs")
    m.set("max_steps", m.int_("max_steps"), "max_steps")
    # axolotl writes the token count of the prepared dataset back into the config it saves (total_num_tokens)
    m.set("dataset_tokens", m.int_("total_num_tokens"), "total_num_tokens", "counted by axolotl's preprocessing")
    m.ignore("total_supervised_tokens", "tokens that carry the loss: the step costs the same")

    opt = m.str_("optimizer")
    if opt is not None:
        name, note = optimizer(opt)
        m.set("optimizer", name, "optimizer", note)
    else:
        m.default("optimizer", "adamw", "axolotl's default optimizer (adamw_torch_fused)")
    m.set("learning_rate", m.float_("learning_rate"), "learning_rate")
    sched = m.str_("lr_scheduler")
    if sched is not None:
        m.set("lr_scheduler", _scheduler(sched, m, "lr_scheduler"), "lr_scheduler")
    else:
        m.default("lr_scheduler", "cosine", "axolotl's default")
    m.set("warmup_ratio", m.float_("warmup_ratio"), "warmup_ratio")
    m.set("weight_decay", m.float_("weight_decay"), "weight_decay")
    m.set("max_grad_norm", m.float_("max_grad_norm"), "max_grad_norm")

    gc = m.take("gradient_checkpointing")
    if gc is not None:
        if isinstance(gc, str) and gc.lower() in ("offload", "offload_disk", "unsloth"):
            m.set("gradient_checkpointing", True, "gradient_checkpointing",
                  f"'{gc}': checkpoints offloaded to CPU are sized as kept on the GPU (upper bound)")
        else:
            m.set("gradient_checkpointing", m.bool_("gradient_checkpointing"), "gradient_checkpointing")
    else:
        m.default("gradient_checkpointing", False, "axolotl's default")

    _precision(m)
    _attention(m)
    tc = m.take("torch_compile")
    if isinstance(tc, str) and tc.strip().lower() == "auto":
        m.set("compile", True, "torch_compile", "auto: compiled where torch supports it")
    else:
        m.set("compile", m.bool_("torch_compile"), "torch_compile")
    chunked = [k for k in ("chunked_cross_entropy", "cut_cross_entropy", "liger_fused_linear_cross_entropy")
               if m.bool_(k, False)]
    plugins = m.take("plugins", [])
    if isinstance(plugins, list) and any("cut_cross_entropy" in str(p).lower() for p in plugins):
        chunked.append("plugins")
    if chunked:
        m.set("chunked_loss", True, chunked[0], "the fp32 logits are never held whole")
    else:
        m.default("chunked_loss", False, "no chunked/cut cross-entropy set")
    if isinstance(plugins, list):
        for p in plugins:
            if "cut_cross_entropy" not in str(p).lower():
                m.note_ignored(f"plugins: {p}", "plugin not modelled")

    ds = m.take_whole("deepspeed")
    fsdp = fsdp_parallel(m.take("fsdp"), m.take_whole("fsdp_config"), config_enables=True)
    m.mark("fsdp_version")
    if ds is not None:
        par, note = deepspeed_parallel(ds, base_dir)
        m.set("parallel", par, "deepspeed", note)
    elif fsdp is not None:
        key = "fsdp" if m.has("fsdp") else "fsdp_config"
        m.set("parallel", fsdp[0], key, fsdp[1])
    else:
        m.default("parallel", "ddp", "no deepspeed/fsdp: data parallel")

    datasets = m.take("datasets")
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        first = datasets[0]
        if first.get("path"):
            m.set("data.path", str(first["path"]), "datasets[0].path")
        dtype = str(first.get("type") or "").split(":")[0].split(".")[0]
        if dtype in _DATA_TYPES:
            m.set("data.format", _DATA_TYPES[dtype], "datasets[0].type")
        if len(datasets) > 1:
            m.note_ignored("datasets[1:]", "the bundled trainer reads one dataset; the plan's size comes from "
                                           "--dataset-tokens")
    val = m.float_("val_set_size")
    if val is not None and 0 <= val < 1:
        m.set("data.eval_fraction", val, "val_set_size")
    m.set("output_dir", m.str_("output_dir"), "output_dir")
    m.set("seed", m.int_("seed"), "seed")
    m.set("save_steps", m.int_("save_steps"), "save_steps")
    m.set("eval_steps", m.int_("eval_steps"), "eval_steps")
    m.set("logging_steps", m.int_("logging_steps"), "logging_steps")
    m.finish(_reason)


def _scheduler(name: str, m: Mapper, key: str) -> str:
    n = name.lower()
    for s in ("cosine", "linear", "constant"):
        if n.startswith(s) or s in n:
            return s
    m.note_ignored(key, f"schedule '{name}' has no effect on memory or speed; the bundled trainer would use cosine")
    return "cosine"


def _precision(m: Mapper) -> None:
    """bf16: true|auto -> bf16 (axolotl loads the model in bf16, so weights and AdamW states are bf16);
    fp16: true -> fp16-mixed; bfloat16/float16 (load dtype) likewise; none of them -> fp32."""
    bf16 = m.take("bf16")
    auto = isinstance(bf16, str) and bf16.strip().lower() == "auto"
    m.mark("tf32")
    if auto:
        m.set("precision", "bf16", "bf16", "auto: bf16 where the GPU has it")
    elif m.bool_("bf16", False):
        m.set("precision", "bf16", "bf16", "axolotl loads the model in bf16")
    elif m.bool_("fp16", False):
        m.set("precision", "fp16-mixed", "fp16")
    elif m.bool_("bfloat16", False):
        m.set("precision", "bf16", "bfloat16", "model loaded in bf16")
    elif m.bool_("float16", False):
        m.set("precision", "fp16-mixed", "float16", "model loaded in fp16")
    elif bf16 is None and not m.bool_("float32", False):
        m.default("precision", "bf16", "axolotl's default bf16: auto (bf16 where the GPU has it)")
    else:
        m.set("precision", "fp32", "bf16" if bf16 is not None else "float32", "bf16 and fp16 off: fp32")
    for k in ("fp16", "bfloat16", "float16", "float32"):
        m.mark(k)


def _attention(m: Mapper) -> None:
    impl = m.str_("attn_implementation")
    if impl is not None:
        got = attention(impl)
        if got is None:
            raise m.error("attn_implementation", f"'{impl}' is not known", "use flash_attention_2, sdpa or eager")
        m.set("attention", got[0], "attn_implementation", got[1])
    for key, value, note in (("flash_attention", "flash", ""), ("sdp_attention", "sdpa", ""),
                             ("xformers_attention", "sdpa", "xformers is memory-efficient like sdpa"),
                             ("flex_attention", "sdpa", "flex attention sized as sdpa"),
                             ("eager_attention", "eager", "")):
        if m.bool_(key, False) and "attention" not in m.fields:
            m.set("attention", value, key, note)
    m.mark("s2_attention")
    m.default("attention", "sdpa", "transformers' default attn_implementation")


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------
_OPT_NAMES = {"adamw": "adamw_torch_fused", "adamw-8bit": "adamw_bnb_8bit", "paged-adamw-8bit": "paged_adamw_8bit",
              "sgd": "sgd"}
_DATA_TYPE_OUT = {"instruction": "alpaca", "chat": "chat_template", "text": "completion"}


def export(spec: JobSpec) -> dict[str, Any]:
    """The axolotl config of `spec` (what the tool can express; the caller keeps the rest in a hint line)."""
    out: dict[str, Any] = {"base_model": spec.model}
    if spec.method == "qlora":
        out.update(adapter="qlora", load_in_4bit=True,
                   bnb_config_kwargs={"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": spec.double_quant})
    elif spec.method == "lora":
        out["adapter"] = "lora"
    if spec.method != "full":
        out.update(lora_r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout)
        if spec.lora_targets == "all-linear":
            out["lora_target_linear"] = True
        else:
            out["lora_target_modules"] = list(spec.lora_targets)
    out.update(sequence_len=spec.seq_len, sample_packing=spec.packing, micro_batch_size=spec.batch_size,
               gradient_accumulation_steps=spec.grad_accum, num_epochs=spec.epochs)
    if spec.max_steps:
        out["max_steps"] = spec.max_steps
    out.update(optimizer=_OPT_NAMES[spec.optimizer], lr_scheduler=spec.lr_scheduler, learning_rate=spec.learning_rate,
               warmup_ratio=spec.warmup_ratio, weight_decay=spec.weight_decay, max_grad_norm=spec.max_grad_norm,
               gradient_checkpointing=spec.gradient_checkpointing)
    if spec.precision in ("bf16", "bf16-mixed"):
        out["bf16"] = True
    elif spec.precision == "fp16-mixed":
        out["fp16"] = True
    else:
        out.update(bf16=False, fp16=False)
    out[{"flash": "flash_attention", "sdpa": "sdp_attention", "eager": "eager_attention"}[spec.attention]] = True
    if spec.compile:
        out["torch_compile"] = True
    if spec.chunked_loss:
        out["chunked_cross_entropy"] = True
    if spec.parallel == "zero3":
        out["deepspeed"] = "deepspeed_configs/zero3_bf16.json"
    elif spec.parallel in ("fsdp", "fsdp-offload"):
        out["fsdp_version"] = 2
        out["fsdp_config"] = {"offload_params": spec.parallel == "fsdp-offload", "reshard_after_forward": True,
                              "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "state_dict_type": "FULL_STATE_DICT"}
    if spec.data.path:
        ds: dict[str, Any] = {"path": spec.data.path}
        if spec.data.format in _DATA_TYPE_OUT:
            ds["type"] = _DATA_TYPE_OUT[spec.data.format]
        out["datasets"] = [ds]
    out.update(val_set_size=spec.data.eval_fraction, output_dir=spec.output_dir, seed=spec.seed,
               save_steps=spec.save_steps, logging_steps=spec.logging_steps)
    if spec.eval_steps:
        out["eval_steps"] = spec.eval_steps
    return out
