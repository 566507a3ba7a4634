"""The job spec: one YAML schema that `gpuplan plan`, `gpuplan launch` and `python -m train` all read.

Torch-free and dependency-light (PyYAML only) so the planner can import it in well under a second
and the trainer can ship it to a remote machine unchanged.

A spec is a flat mapping whose keys are the CLI flags with underscores (``--seq-len`` -> ``seq_len``),
plus a nested ``data`` section that only the trainer reads. Flags override the file. Every problem is
raised as :class:`SpecError` naming the field and the fix, which the CLIs turn into one line and exit 2.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd")
# bf16       : weights, gradients and optimizer states all in bf16 ("pure bf16", torchtune/litgpt bf16-true)
# bf16-mixed : fp32 master weights and states, bf16 autocast for compute
# fp16-mixed : as bf16-mixed with fp16 autocast (plus a loss scaler)
# fp32       : everything fp32 (TF32 matmuls where the GPU has them)
PRECISIONS = ("bf16", "bf16-mixed", "fp16-mixed", "fp32")
ATTENTIONS = ("sdpa", "flash", "eager")
PARALLELISMS = ("ddp", "fsdp", "fsdp-offload", "zero3")
DATA_FORMATS = ("auto", "chat", "instruction", "text")
LR_SCHEDULERS = ("cosine", "linear", "constant")
# The training stack that runs the job: the few memory/speed mechanisms that differ between stacks (loss
# upcast, k-bit preparation's fp32 casts, adapter dtype, ZeRO/FSDP buffers) follow from it; the planner's
# estimator documents each mechanism with its source. "gpuplan" is the bundled trainer (`python -m train`).
STACKS = ("gpuplan", "hf-trainer", "hf-trainer-2024", "trl", "axolotl", "llama-factory", "torchtune", "litgpt")


class SpecError(ValueError):
    """A job spec problem: ``field`` is the offending key, ``fix`` says what to do about it."""

    def __init__(self, field_name: str, problem: str, fix: str = "") -> None:
        self.field = field_name
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        tail = f"; {self.fix}" if self.fix else ""
        return f"{self.field}: {self.problem}{tail}"


@dataclass
class DataSpec:
    """Where the training data is and how to read it (trainer only; the planner ignores it)."""

    path: str | None = None  # local .jsonl / .json / .parquet file, or a hub dataset id
    format: str = "auto"  # auto | chat (a `messages` list) | instruction (prompt/response) | text
    split: str = "train"  # hub split to read
    messages_field: str = "messages"
    prompt_field: str = "instruction"
    input_field: str = "input"
    response_field: str = "output"
    text_field: str = "text"
    completion_only_loss: bool = True  # loss on the assistant/response tokens only (never silently dropped)
    # a Jinja chat template (inline, or a path to a .jinja/.txt file) replacing the tokenizer's own
    chat_template: str | None = None
    eval_fraction: float = 0.05
    max_examples: int | None = None


@dataclass
class JobSpec:
    """A fine-tuning job. Field names are the CLI flags with underscores."""

    model: str = ""
    name: str | None = None
    # method
    method: str = "qlora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str | list[str] = "all-linear"
    # modules trained in full beside LoRA (PEFT modules_to_save), e.g. [embed_tokens, lm_head] when the chat
    # template's special tokens are untrained in the base model
    modules_to_save: list[str] = field(default_factory=list)
    double_quant: bool = True  # QLoRA NF4 double quantization (4.127 vs 4.5 bits/weight)
    # shape of a step
    seq_len: int = 2048
    batch_size: int = 1  # micro batch per GPU
    grad_accum: int = 1
    gradient_checkpointing: bool = True
    optimizer: str = "paged-adamw-8bit"
    precision: str = "bf16"
    attention: str = "sdpa"
    packing: bool = False
    # cross-entropy over the vocabulary in chunks, upcasting one chunk at a time to fp32 (torchtune's
    # CEWithChunkedOutputLoss): the full fp32 logits are never held
    chunked_loss: bool = False
    # torch.compile the model: fused kernels save fewer activations and launch fewer kernels
    compile: bool = False
    # which training stack runs the job (see STACKS); the planner models that stack's mechanisms
    stack: str = "gpuplan"
    # how much data
    dataset_tokens: int | None = None
    dataset_examples: int | None = None
    mean_example_tokens: int | None = None
    epochs: float = 1.0
    # where
    gpu: str | None = None
    gpus: int = 1  # GPUs per node
    nodes: int = 1
    parallel: str = "ddp"
    # training run (trainer; ignored by the planner)
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # <= 0 means no clipping (Hugging Face Trainer's meaning)
    max_steps: int | None = None
    save_steps: int | None = None  # checkpoint every N steps; None: by time (save_every_minutes)
    # checkpoint every N minutes of training (spot preemption loses at most this much); both may be set
    save_every_minutes: float | None = 10.0
    eval_steps: int | None = None
    logging_steps: int = 1
    seed: int = 42
    output_dir: str = "runs/job"
    merge_adapter: bool = False
    data: DataSpec = field(default_factory=DataSpec)

    # -- derived -------------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.gpus * self.nodes

    def total_tokens(self) -> int | None:
        """Tokens the job trains on over all epochs, or None when no dataset size is given."""
        per_epoch = self.dataset_tokens
        if per_epoch is None and self.dataset_examples is not None and self.mean_example_tokens is not None:
            per_epoch = self.dataset_examples * self.mean_example_tokens
        if per_epoch is None:
            return None
        return int(round(per_epoch * self.epochs))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
_TOP_FIELDS = {f.name: f for f in fields(JobSpec)}
_DATA_FIELDS = {f.name: f for f in fields(DataSpec)}
_INT_FIELDS = {
    "lora_r", "lora_alpha", "seq_len", "batch_size", "grad_accum", "dataset_tokens", "dataset_examples",
    "mean_example_tokens", "gpus", "nodes", "max_steps", "save_steps", "eval_steps", "logging_steps", "seed",
}
_FLOAT_FIELDS = {"lora_dropout", "epochs", "learning_rate", "warmup_ratio", "weight_decay", "max_grad_norm",
                 "save_every_minutes"}
_BOOL_FIELDS = {"double_quant", "gradient_checkpointing", "packing", "chunked_loss", "compile", "merge_adapter"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS,
    "optimizer": OPTIMIZERS,
    "precision": PRECISIONS,
    "attention": ATTENTIONS,
    "parallel": PARALLELISMS,
    "lr_scheduler": LR_SCHEDULERS,
    "stack": STACKS,
}
# Must be > 0 when set.
_POSITIVE = {
    "lora_r", "lora_alpha", "seq_len", "batch_size", "grad_accum", "dataset_tokens", "dataset_examples",
    "mean_example_tokens", "gpus", "nodes", "max_steps", "save_steps", "eval_steps", "logging_steps", "epochs",
    "learning_rate", "save_every_minutes",
}


def _unknown(name: str, known: Mapping[str, Any], prefix: str = "") -> SpecError:
    close = difflib.get_close_matches(name, list(known), n=1)
    fix = f"did you mean '{prefix}{close[0]}'?" if close else "remove it (see examples/ for the fields a spec takes)"
    return SpecError(f"{prefix}{name}", "unknown field", fix)


def _coerce(name: str, value: Any, label: str) -> Any:
    """Coerce a YAML/CLI value to the field's type, or raise SpecError naming the field."""
    if value is None:
        return None
    if name in _BOOL_FIELDS or name == "completion_only_loss":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise SpecError(label, f"expected true or false, got {value!r}", "write true or false")
    if name in _INT_FIELDS or name == "max_examples":
        if isinstance(value, bool):
            raise SpecError(label, f"expected a whole number, got {value!r}", "write a number such as 2048")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):  # "2048", "20_000_000", "20e6"
            try:
                as_float = float(value.replace("_", ""))
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)
        if isinstance(value, int):
            return value
        raise SpecError(label, f"expected a whole number, got {value!r}", "write a number such as 2048")
    if name in _FLOAT_FIELDS or name == "eval_fraction":
        if isinstance(value, bool):
            raise SpecError(label, f"expected a number, got {value!r}", "write a number such as 1.0")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SpecError(label, f"expected a number, got {value!r}", "write a number such as 1.0") from None
    if name == "lora_targets":
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return "all-linear" if parts == ["all-linear"] else parts
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
            return list(value)
        raise SpecError(label, f"expected 'all-linear' or a list of module names, got {value!r}",
                        "write all-linear or e.g. [q_proj, v_proj]")
    if name == "modules_to_save":
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
            return list(value)
        raise SpecError(label, f"expected a list of module names, got {value!r}", "write e.g. [embed_tokens, lm_head]")
    if isinstance(value, (dict, list)):
        raise SpecError(label, f"expected a single value, got {type(value).__name__}", "write a plain value")
    return str(value)


def validate(spec: JobSpec, require_model: bool = True) -> JobSpec:
    """Check ranges and choices; raise SpecError for the first problem found."""
    if require_model and not spec.model:
        raise SpecError("model", "missing", "give a registry id (e.g. meta-llama/Llama-3.1-8B), a config.json or a model folder")
    for name, choices in _CHOICES.items():
        value = getattr(spec, name)
        if value not in choices:
            raise SpecError(name, f"{value!r} is not one of {', '.join(choices)}", f"use one of {', '.join(choices)}")
    for name in sorted(_POSITIVE):
        value = getattr(spec, name)
        if value is not None and value <= 0:
            raise SpecError(name, f"must be greater than 0, got {value}", "give a positive number")
    if not 0 <= spec.lora_dropout < 1:
        raise SpecError("lora_dropout", f"must be in [0, 1), got {spec.lora_dropout}", "use e.g. 0.05")
    if not 0 <= spec.warmup_ratio < 1:
        raise SpecError("warmup_ratio", f"must be in [0, 1), got {spec.warmup_ratio}", "use e.g. 0.03")
    if (spec.dataset_examples is None) != (spec.mean_example_tokens is None) and spec.dataset_tokens is None:
        missing = "mean_example_tokens" if spec.mean_example_tokens is None else "dataset_examples"
        raise SpecError(missing, "needed with the other half of examples x mean length",
                        "give both dataset_examples and mean_example_tokens, or dataset_tokens")
    if spec.method == "qlora" and spec.precision in ("fp32",):
        raise SpecError("precision", "QLoRA computes in 16-bit", "use bf16 (or fp16-mixed on GPUs without bf16)")
    d = spec.data
    if d.format not in DATA_FORMATS:
        raise SpecError("data.format", f"{d.format!r} is not one of {', '.join(DATA_FORMATS)}",
                        f"use one of {', '.join(DATA_FORMATS)}")
    if not 0 <= d.eval_fraction < 1:
        raise SpecError("data.eval_fraction", f"must be in [0, 1), got {d.eval_fraction}", "use e.g. 0.05")
    if d.max_examples is not None and d.max_examples <= 0:
        raise SpecError("data.max_examples", "must be greater than 0", "give a positive number or leave it out")
    return spec


# ----------------------------------------------------------------------------------------------
# Building a spec
# ----------------------------------------------------------------------------------------------
def spec_from_dict(raw: Mapping[str, Any] | None, *, require_model: bool = True) -> JobSpec:
    """Build and validate a JobSpec from a mapping (a parsed YAML file, or flags)."""
    spec = apply_overrides(JobSpec(), raw or {}, require_model=False)
    return validate(spec, require_model=require_model)


def apply_overrides(spec: JobSpec, overrides: Mapping[str, Any], *, require_model: bool = True) -> JobSpec:
    """Return a copy of ``spec`` with ``overrides`` applied (None values are ignored) and validated.

    Keys may use dashes or underscores (``seq-len`` or ``seq_len``); ``data`` takes a nested mapping,
    or dotted keys such as ``data.path``.
    """
    if not isinstance(overrides, Mapping):
        raise SpecError("(top level)", "a job spec must be a mapping of field: value", "see examples/ for the format")
    values = dataclasses.asdict(spec)
    data_values = values.pop("data")
    for key, value in overrides.items():
        if value is None:
            continue
        name = str(key).replace("-", "_")
        if name == "data" or name.startswith("data."):
            sub = {name[5:]: value} if name.startswith("data.") else value
            if not isinstance(sub, Mapping):
                raise SpecError("data", "expected a mapping (path, format, ...)", "write data: {path: train.jsonl}")
            for dkey, dval in sub.items():
                dname = str(dkey).replace("-", "_")
                if dname not in _DATA_FIELDS:
                    raise _unknown(dname, _DATA_FIELDS, prefix="data.")
                if dval is not None:
                    data_values[dname] = _coerce(dname, dval, f"data.{dname}")
            continue
        if name not in _TOP_FIELDS:
            raise _unknown(name, _TOP_FIELDS)
        values[name] = _coerce(name, value, name)
    new = JobSpec(**values, data=DataSpec(**data_values))
    return validate(new, require_model=require_model)


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None,
              *, require_model: bool = True) -> JobSpec:
    """Read a YAML job spec, apply flag overrides, validate. Raises SpecError on any problem."""
    import yaml  # PyYAML: ~0.05 s, only when a file is read

    p = os.fspath(path)
    if not os.path.exists(p):
        raise SpecError("job file", f"{p} does not exist", "check the path")
    if os.path.isdir(p):
        raise SpecError("job file", f"{p} is a directory", "give a YAML file")
    try:
        with open(p, encoding="utf-8") as fh:
            # libyaml's C loader where present (~10x faster than the pure-Python one)
            raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError("job file", f"{p} is not valid YAML{where}", "fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise SpecError("job file", f"{p} is not a UTF-8 text file", "give a YAML file") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError("job file", f"{p} must hold a mapping of field: value", "see examples/ for the format")
    merged = dict(raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    spec = apply_overrides(JobSpec(), merged, require_model=require_model)
    # A relative data path in a spec file is relative to that file, so a job folder can move.
    if spec.data.path and not os.path.isabs(spec.data.path):
        candidate = os.path.join(os.path.dirname(os.path.abspath(p)), spec.data.path)
        if os.path.exists(candidate):
            spec.data.path = candidate
    return spec


def dump_spec(spec: JobSpec) -> str:
    """The spec as YAML (what launch ships to the remote machine)."""
    import yaml

    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
