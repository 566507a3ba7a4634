"""transformers TrainingArguments keys, shared by LLaMA-Factory and TRL configs (transformers 5.x
TrainingArguments: per_device_train_batch_size 8, gradient_accumulation_steps 1, num_train_epochs 3.0,
max_steps -1, optim adamw_torch(_fused), lr_scheduler_type linear, gradient_checkpointing False, deepspeed,
fsdp/fsdp_config, torch_compile, use_liger_kernel)."""
from __future__ import annotations

from typing import Any, Mapping

from planner.imports.common import Mapper, deepspeed_parallel, fsdp_parallel, optimizer
from train.spec import JobSpec

_REASONS: list[tuple[str, str]] = [
    ("report_to", "experiment tracking: no effect on memory, speed or cost"),
    ("run_name", "experiment tracking: no effect on memory, speed or cost"),
    ("logging_", "logging: no effect on memory, speed or cost"),
    ("log_", "logging: no effect on memory, speed or cost"),
    ("disable_tqdm", "logging: no effect on memory, speed or cost"),
    ("push_to_hub", "uploading results: no effect on memory, speed or cost"),
    ("hub_", "uploading results: no effect on memory, speed or cost"),
    ("save_", "checkpoint saving: not sized"),
    ("overwrite_output_dir", "output handling: no effect on the plan"),
    ("resume_from_checkpoint", "resuming: no effect on the plan"),
    ("do_eval", "evaluation: not part of the training time"),
    ("do_predict", "evaluation: not part of the training time"),
    ("eval_", "evaluation: not part of the training time"),
    ("evaluation_strategy", "evaluation: not part of the training time"),
    ("per_device_eval_batch_size", "evaluation: not part of the training time"),
    ("predict_with_generate", "evaluation: not part of the training time"),
    ("load_best_model_at_end", "evaluation: not part of the training time"),
    ("metric_for_best_model", "evaluation: not part of the training time"),
    ("greater_is_better", "evaluation: not part of the training time"),
    ("ddp_", "launcher/communication setting: not modelled"),
    ("dataloader_", "data loading: not modelled"),
    ("remove_unused_columns", "data handling: no effect on the plan"),
    ("group_by_length", "batch ordering: no effect on the sized step"),
    ("length_column_name", "batch ordering: no effect on the sized step"),
    ("label_names", "data handling: no effect on the plan"),
    ("include_", "bookkeeping: no effect on the plan"),
    ("warmup_steps", "schedule shape: no effect on memory, speed or cost"),
    ("lr_scheduler_kwargs", "schedule shape: no effect on memory, speed or cost"),
    ("adam_", "optimizer hyper-parameters: no effect on memory or speed"),
    ("optim_args", "optimizer hyper-parameters: no effect on memory or speed"),
    ("optim_target_modules", "optimizer detail: not modelled"),
    ("gradient_checkpointing_kwargs", "checkpointing detail: not modelled"),
    ("local_rank", "set by the launcher"),
    ("data_seed", "data order: no effect on the plan"),
    ("full_determinism", "reproducibility: no effect on the plan"),
    ("tf32", "matmul precision switch: throughput is sized from the GPU's bf16/fp32 peaks"),
    ("torch_compile_", "compile detail: not modelled"),
    ("neftune_noise_alpha", "embedding noise: no effect on memory or speed"),
    ("label_smoothing_factor", "loss detail: no effect on memory or speed"),
    ("accelerator_config", "launcher setting: not modelled"),
    ("fsdp_min_num_params", "FSDP wrapping detail: not modelled"),
    ("fsdp_transformer_layer_cls_to_wrap", "FSDP wrapping detail: not modelled"),
    ("generation_", "evaluation: not part of the training time"),
    ("auto_find_batch_size", "the trainer may lower the batch on OOM: the plan sizes the batch given"),
    ("skip_memory_metrics", "bookkeeping: no effect on the plan"),
    ("do_train", "always trains"),
    ("average_tokens_across_devices", "loss normalisation: no effect on memory or speed"),
    ("bf16_full_eval", "evaluation: not part of the training time"),
    ("fp16_full_eval", "evaluation: not part of the training time"),
    ("prediction_loss_only", "evaluation: not part of the training time"),
    ("batch_eval_metrics", "evaluation: not part of the training time"),
    ("use_cache", "generation cache: off while training with checkpointing"),
    ("project", "experiment tracking: no effect on memory, speed or cost"),
    ("trackio_", "experiment tracking: no effect on memory, speed or cost"),
    ("enable_jit_checkpoint", "checkpoint saving: not sized"),
    ("ignore_data_skip", "resuming: no effect on the plan"),
    ("restore_callback_states_from_checkpoint", "resuming: no effect on the plan"),
    ("use_cpu", "the plan sizes GPUs"),
    ("train_sampling_strategy", "data order: no effect on the plan"),
    ("jit_mode_eval", "evaluation: not part of the training time"),
    ("past_index", "model output detail: no effect on the plan"),
    ("half_precision_backend", "AMP backend: no effect on the plan"),
    ("fp16_opt_level", "apex detail: not modelled"),
    ("tpu_", "TPU setting: the plan sizes GPUs"),
    ("debug", "debugging: no effect on the plan"),
    ("torch_empty_cache_steps", "allocator housekeeping: not modelled"),
    ("liger_kernel_config", "Liger kernel detail: not modelled"),
    ("hub_", "uploading results: no effect on memory, speed or cost"),
    ("mp_parameters", "launcher setting: not modelled"),
    ("ray_scope", "hyper-parameter search: not part of one run"),
]

HF_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "optim",
           "lr_scheduler_type", "torch_compile", "use_liger_kernel", "deepspeed", "fsdp", "fsdp_config",
           "report_to", "per_device_eval_batch_size", "overwrite_output_dir", "save_strategy", "eval_strategy",
           "evaluation_strategy", "ddp_timeout", "save_total_limit", "push_to_hub", "remove_unused_columns",
           "dataloader_num_workers", "run_name")


def reason(key: str) -> str | None:
    for prefix, why in _REASONS:
        if key.startswith(prefix):
            return why
    return None


def _scheduler(m: Mapper) -> None:
    name = m.str_("lr_scheduler_type")
    if name is None:
        m.default("lr_scheduler", "linear", "transformers' default lr_scheduler_type")
        return
    n = name.lower()
    for s in ("cosine", "linear", "constant"):
        if s in n:
            m.set("lr_scheduler", s, "lr_scheduler_type")
            return
    m.note_ignored("lr_scheduler_type", f"schedule '{name}' has no effect on memory or speed; the bundled trainer "
                                        "would use cosine")


def _steps(m: Mapper, key: str, field: str) -> None:
    v = m.take(key)
    if isinstance(v, float) and 0 < v < 1:
        m.note_ignored(key, "a fraction of the run: no effect on the plan")
        return
    m.set(field, m.int_(key), key)


def read(m: Mapper, *, stage_defaults: Mapping[str, Any], gradient_checkpointing_default: bool | None) -> None:
    """The TrainingArguments keys common to LLaMA-Factory and TRL configs (precision excepted)."""
    m.set("batch_size", m.int_("per_device_train_batch_size"), "per_device_train_batch_size")
    m.default("batch_size", stage_defaults["per_device_train_batch_size"], "the tool's default per_device_train_batch_size")
    m.set("grad_accum", m.int_("gradient_accumulation_steps"), "gradient_accumulation_steps")
    m.default("grad_accum", 1, "transformers' default")
    m.set("epochs", m.float_("num_train_epochs"), "num_train_epochs")
    m.default("epochs", stage_defaults["num_train_epochs"], "the tool's default num_train_epochs")
    steps = m.int_("max_steps")
    if steps is not None and steps > 0:
        m.set("max_steps", steps, "max_steps")
    opt = m.str_("optim")
    if opt is not None:
        name, note = optimizer(opt)
        m.set("optimizer", name, "optim", note)
    else:
        m.default("optimizer", "adamw", "transformers' default optim (adamw_torch)")
    m.set("learning_rate", m.float_("learning_rate"), "learning_rate")
    _scheduler(m)
    m.set("warmup_ratio", m.float_("warmup_ratio"), "warmup_ratio")
    m.set("weight_decay", m.float_("weight_decay"), "weight_decay")
    m.set("max_grad_norm", m.float_("max_grad_norm"), "max_grad_norm")
    gc = m.bool_("gradient_checkpointing")
    if gc is not None:
        m.set("gradient_checkpointing", gc, "gradient_checkpointing")
    elif gradient_checkpointing_default is not None:
        m.default("gradient_checkpointing", gradient_checkpointing_default, "the tool's default")
    m.set("compile", m.bool_("torch_compile"), "torch_compile")
    if m.bool_("use_liger_kernel", False):
        m.set("chunked_loss", True, "use_liger_kernel", "Liger's fused linear cross-entropy: no whole fp32 logits")
    ds = m.take_whole("deepspeed")
    fsdp = fsdp_parallel(m.take("fsdp"), m.take_whole("fsdp_config"))
    base_dir = m.base_dir
    if ds:
        par, note = deepspeed_parallel(ds, base_dir)
        m.set("parallel", par, "deepspeed", note)
    elif fsdp is not None:
        m.set("parallel", fsdp[0], "fsdp" if m.has("fsdp") else "fsdp_config", fsdp[1])
    else:
        m.default("parallel", "ddp", "no deepspeed/fsdp: data parallel")
    m.set("output_dir", m.str_("output_dir"), "output_dir")
    m.set("seed", m.int_("seed"), "seed")
    _steps(m, "save_steps", "save_steps")
    _steps(m, "eval_steps", "eval_steps")
    _steps(m, "logging_steps", "logging_steps")


_OPT_OUT = {"adamw": "adamw_torch", "adamw-8bit": "adamw_bnb_8bit", "paged-adamw-8bit": "paged_adamw_8bit",
            "sgd": "sgd"}


def export(spec: JobSpec, *, include_gc: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"output_dir": spec.output_dir, "per_device_train_batch_size": spec.batch_size,
                           "gradient_accumulation_steps": spec.grad_accum, "num_train_epochs": spec.epochs}
    if spec.max_steps:
        out["max_steps"] = spec.max_steps
    out.update(optim=_OPT_OUT[spec.optimizer], learning_rate=spec.learning_rate, lr_scheduler_type=spec.lr_scheduler,
               warmup_ratio=spec.warmup_ratio, weight_decay=spec.weight_decay, max_grad_norm=spec.max_grad_norm)
    if include_gc:
        out["gradient_checkpointing"] = spec.gradient_checkpointing
    if spec.compile:
        out["torch_compile"] = True
    if spec.parallel == "zero3":
        out["deepspeed"] = "ds_z3_config.json"
    elif spec.parallel in ("fsdp", "fsdp-offload"):
        out["fsdp"] = "full_shard auto_wrap" + (" offload" if spec.parallel == "fsdp-offload" else "")
    out.update(seed=spec.seed, save_steps=spec.save_steps, logging_steps=spec.logging_steps)
    if spec.eval_steps:
        out["eval_steps"] = spec.eval_steps
    return out
