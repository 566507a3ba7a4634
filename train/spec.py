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
import math
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
STACKS = ("gpuplan", "hf-trainer", "hf-trainer-2024", "trl", "axolotl", "llama-factory", "torchtune", "litgpt",
          "torchtune-2024")


_ONE_LINE = {c: " " for c in range(32)}


class SpecError(ValueError):
    """A job spec problem: ``field`` is the offending key, ``fix`` says what to do about it."""

    def __init__(self, field_name: str, problem: str, fix: str = "") -> None:
        self.field = field_name
        self.problem = problem
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        tail = f"; {self.fix}" if self.fix else ""
        # control characters from a hostile value (a key with a line break) never split the line
        return f"{self.field}: {self.problem}{tail}".translate(_ONE_LINE)


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
# Upper (and lower) bounds, inclusive: far beyond any real job, tight enough that no arithmetic downstream
# overflows, divides by zero or allocates for ever (`lora_r: 2**63`, `seq_len: 2**31`, `grad_accum: 1e30`).
#   lora_r 65536: the largest ranks used in practice are 1-2k (LoRA paper sweeps to 64; rsLoRA to 2048)
#   seq_len 2**22 (4M tokens): 4x the longest context of published models (1M, Qwen2.5-1M, Llama 4 Scout 10M
#   is inference-only); gpus 128 per node (GB200 NVL72 is the largest NVLink domain: 72); nodes 8192
#   dataset_tokens 1e14: 7x Llama 3's 15T pre-training tokens; epochs 1000; learning_rate 10
_RANGES: dict[str, tuple[float, float]] = {
    "lora_r": (1, 65536), "lora_alpha": (1, 1_000_000), "seq_len": (1, 2 ** 22), "batch_size": (1, 65536),
    "grad_accum": (1, 1_000_000), "dataset_tokens": (1, 10 ** 14), "dataset_examples": (1, 10 ** 12),
    "mean_example_tokens": (1, 2 ** 22), "gpus": (1, 128), "nodes": (1, 8192), "max_steps": (1, 10 ** 9),
    "save_steps": (1, 10 ** 9), "eval_steps": (1, 10 ** 9), "logging_steps": (1, 10 ** 9), "seed": (0, 2 ** 32 - 1),
    "epochs": (1e-6, 1000), "learning_rate": (1e-12, 10), "weight_decay": (0, 10), "max_grad_norm": (0, 1e6),
    "lora_dropout": (0, 0.999999), "warmup_ratio": (0, 0.999999), "save_every_minutes": (0.1, 7 * 24 * 60),
}
_DATA_RANGES: dict[str, tuple[float, float]] = {"eval_fraction": (0, 0.999999), "max_examples": (1, 10 ** 12)}
# Free-text fields: bounded so a pasted blob cannot become a file name (ENAMETOOLONG) or a 200 kB message.
# chat_template: a Jinja template; Llama 3.1's is ~4.5 kB, the longest in common use (tool-calling) ~15 kB.
_MAX_TEXT = {"model": 1024, "name": 200, "gpu": 64, "output_dir": 4096, "chat_template": 65536}
_MAX_TEXT_DEFAULT = 4096


def _unknown(name: str, known: Mapping[str, Any], prefix: str = "") -> SpecError:
    close = difflib.get_close_matches(name[:100], list(known), n=1)
    fix = f"did you mean '{prefix}{close[0]}'?" if close else "remove it (see examples/ for the fields a spec takes)"
    shown = name[:60] if name[:60].isprintable() else repr(name[:60])  # a key with a line break stays one line
    return SpecError(f"{prefix}{shown}", "unknown field", fix)


def _show(value: Any, limit: int = 60) -> str:
    """repr() of a value cut for an error line (a 200 kB string must not become a 200 kB message)."""
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _fmt(x: float) -> str:
    """A bound or value for a message: 1000000 (not 1e+06) up to 12 digits, 1e+30 beyond."""
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer()):
        return str(int(x)) if abs(x) < 1e12 else f"{float(x):.3g}"
    return f"{x:g}"


def _cut(text: str, limit: int = 200) -> str:
    """A path cut for an error line, unquoted."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _coerce(name: str, value: Any, label: str) -> Any:
    """Coerce a YAML/CLI value to the field's type, or raise SpecError naming the field."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) > _MAX_TEXT.get(name, _MAX_TEXT_DEFAULT):
        raise SpecError(label, f"{len(value)} characters, over the {_MAX_TEXT.get(name, _MAX_TEXT_DEFAULT)} limit",
                        "give a shorter value")
    if isinstance(value, str) and any(ch in value for ch in "\x00\r\n"):
        raise SpecError(label, "contains a NUL or line-break character", "write it on one line")
    if name in _BOOL_FIELDS or name == "completion_only_loss":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise SpecError(label, f"expected true or false, got {_show(value)}", "write true or false")
    if name in _INT_FIELDS or name == "max_examples":
        if isinstance(value, bool):
            raise SpecError(label, f"expected a whole number, got {_show(value)}", "write a number such as 2048")
        if isinstance(value, float) and value.is_integer():  # is_integer() is False for nan and inf
            return int(value)
        if isinstance(value, str) and len(value) <= 40:  # "2048", "20_000_000", "20e6"
            text = value.strip().replace("_", "")
            if text.lstrip("+-").isdigit():
                return int(text)
            try:
                as_float = float(text)
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)
        if isinstance(value, int):
            return value
        raise SpecError(label, f"expected a whole number, got {_show(value)}", "write a number such as 2048")
    if name in _FLOAT_FIELDS or name == "eval_fraction":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or (isinstance(value, str)
                                                                                   and len(value) > 40):
            raise SpecError(label, f"expected a number, got {_show(value)}", "write a number such as 1.0")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise SpecError(label, f"expected a number, got {_show(value)}", "write a number such as 1.0") from None
        if not math.isfinite(number):
            raise SpecError(label, f"must be a finite number, got {_show(value)}", "write a number such as 1.0")
        return number
    if name == "lora_targets":
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            return "all-linear" if parts == ["all-linear"] else parts
        if (isinstance(value, (list, tuple)) and 0 < len(value) <= 256
                and all(isinstance(v, str) and 0 < len(v) <= 200 for v in value)):
            return list(value)
        raise SpecError(label, f"expected 'all-linear' or a list of module names, got {_show(value)}",
                        "write all-linear or e.g. [q_proj, v_proj]")
    if name == "modules_to_save":
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        if (isinstance(value, (list, tuple)) and len(value) <= 256  # [] = none (what dump_spec writes)
                and all(isinstance(v, str) and 0 < len(v) <= 200 for v in value)):
            return list(value)
        raise SpecError(label, f"expected a list of module names, got {_show(value)}",
                        "write e.g. [embed_tokens, lm_head]")
    if isinstance(value, (dict, list, tuple, set, bytes)):
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
            raise SpecError(name, f"must be greater than 0, got {_show(value)}", "give a positive number")
    for name, (lo, hi) in _RANGES.items():
        value = getattr(spec, name)
        if value is not None and not lo <= value <= hi:
            raise SpecError(name, f"{_fmt(value)} is out of range", f"use {_fmt(lo)}..{_fmt(hi)}")
    for name, (lo, hi) in _DATA_RANGES.items():
        value = getattr(spec.data, name)
        if value is not None and not lo <= value <= hi:
            raise SpecError(f"data.{name}", f"{_fmt(value)} is out of range", f"use {_fmt(lo)}..{_fmt(hi)}")
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


def apply_overrides(spec: JobSpec, overrides: Mapping[str, Any], *, require_model: bool = True,
                    check: bool = False) -> JobSpec:
    """Return a copy of ``spec`` with ``overrides`` applied (None values are ignored) and validated.

    Keys may use dashes or underscores (``seq-len`` or ``seq_len``); ``data`` takes a nested mapping,
    or dotted keys such as ``data.path``. ``check=True`` also refuses contradictions between the fields given
    here (check_conflicts): the CLI's flags; load_spec checks a file and its flags together.
    """
    if not isinstance(overrides, Mapping):
        raise SpecError("(top level)", "a job spec must be a mapping of field: value", "see examples/ for the format")
    values = dataclasses.asdict(spec)
    data_values = values.pop("data")
    for key, value in overrides.items():
        if value is None:
            continue
        if not isinstance(key, str):
            raise SpecError(_show(key), "not a field name", "see examples/ for the fields a spec takes")
        name = key.replace("-", "_")
        if name == "data" or name.startswith("data."):
            sub = {name[5:]: value} if name.startswith("data.") else value
            if not isinstance(sub, Mapping):
                raise SpecError("data", "expected a mapping (path, format, ...)", "write data: {path: train.jsonl}")
            for dkey, dval in sub.items():
                if not isinstance(dkey, str):
                    raise SpecError(f"data.{_show(dkey)}", "not a field name", "see examples/ for the data fields")
                dname = dkey.replace("-", "_")
                if dname not in _DATA_FIELDS:
                    raise _unknown(dname, _DATA_FIELDS, prefix="data.")
                if dval is not None:
                    data_values[dname] = _coerce(dname, dval, f"data.{dname}")
            continue
        if name not in _TOP_FIELDS:
            raise _unknown(name, _TOP_FIELDS)
        values[name] = _coerce(name, value, name)
    new = validate(JobSpec(**values, data=DataSpec(**data_values)), require_model=require_model)
    if check:
        check_conflicts(new, {str(k).replace("-", "_") for k, v in overrides.items() if v is not None})
    return new


MAX_SPEC_BYTES = 1_000_000  # a job spec is a few hundred bytes; 1 MB leaves room for long comments
_MAX_YAML_DEPTH = 16  # a spec nests two levels (data: {...}); lists of target names add one


def _refuse_file(p: str) -> None:
    """A job file must be an existing regular file under the size limit: a FIFO would block the read for ever,
    a device (/dev/zero) would never end, a 50 MB file would take minutes to parse before its first error."""
    import stat

    if not p:
        raise SpecError("job file", "empty path", "give a YAML file")
    if "\x00" in p:
        raise SpecError("job file", "the path contains a NUL character", "give a YAML file")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise SpecError("job file", f"{_cut(p)} does not exist", "check the path") from None
    except OSError as exc:
        raise SpecError("job file", f"cannot read {_cut(p)}: {exc.strerror or exc}", "check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError("job file", f"{_cut(p)} is a directory", "give a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError("job file", f"{_cut(p)} is not a regular file (a FIFO, socket or device)", "give a YAML file")
    if st.st_size > MAX_SPEC_BYTES:
        raise SpecError("job file", f"{_cut(p)} is {st.st_size / 1e6:.1f} MB, over the {MAX_SPEC_BYTES / 1e6:g} MB limit "
                        "for a job spec", "give the job's YAML file")


def load_yaml_text(text: str, origin: str, field_name: str = "job file") -> Any:
    """Parse YAML safely: anchors/aliases refused (no "billion laughs" expansion), nesting bounded, a key given
    twice refused (PyYAML would keep the last one silently), numbers too long for int() refused."""
    import yaml  # PyYAML: ~0.05 s, only when a file is read

    # libyaml's C loader where present (~10x faster than the pure-Python one)
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=base):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise SpecError(field_name, f"{origin} uses YAML anchors/aliases (& and *)",
                                "write the values out in full")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > _MAX_YAML_DEPTH:
                    raise SpecError(field_name, f"{origin} is nested more than {_MAX_YAML_DEPTH} levels deep",
                                    "see examples/ for the format")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_strict_loader(base))
    except SpecError:
        raise
    except _DuplicateKey as exc:
        raise SpecError(field_name, f"{origin}: {exc}", "give each field once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(field_name, f"{origin} is not valid YAML{where}", "fix the YAML syntax") from None
    except (ValueError, OverflowError, RecursionError) as exc:  # int() of a 5000-digit number, date overflow
        raise SpecError(field_name, f"{origin}: a value cannot be read ({_show(str(exc), 80)})",
                        "fix the value") from None


class _DuplicateKey(ValueError):
    pass


_STRICT_LOADERS: dict[type, type] = {}


def _strict_loader(base: type) -> type:
    """PyYAML's safe loader whose mappings refuse a key given twice."""
    if base not in _STRICT_LOADERS:
        import yaml

        class Strict(base):  # type: ignore[misc, valid-type]
            def construct_mapping(self, node: Any, deep: bool = False) -> Any:
                seen: set[tuple[str, str]] = set()
                for key_node, _ in node.value:
                    if isinstance(key_node, yaml.ScalarNode):
                        k = (key_node.tag, key_node.value)
                        if k in seen:
                            raise _DuplicateKey(f"{_show(key_node.value, 40)} is given twice "
                                                f"(line {key_node.start_mark.line + 1})")
                        seen.add(k)
                return super().construct_mapping(node, deep=deep)

        _STRICT_LOADERS[base] = Strict
    return _STRICT_LOADERS[base]


def read_spec_file(path: str | os.PathLike[str], what: str = "YAML file") -> tuple[str, Any]:
    """(text, parsed YAML) of a job file, read safely: a regular file under the size limit, UTF-8, no YAML
    anchors, bounded nesting, no key given twice. Every problem is one SpecError naming the file."""
    p = os.fspath(path)
    _refuse_file(p)
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError("job file", f"cannot read {p}: {exc.strerror or exc}", "check the path") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError("job file", f"{p} is over the {MAX_SPEC_BYTES / 1e6:g} MB limit", f"give the job's {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("job file", f"{p} is not a UTF-8 text file", f"give a {what}") from None
    return text, load_yaml_text(text, p)


def load_spec(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None,
              *, require_model: bool = True) -> JobSpec:
    """Read a YAML job spec, apply flag overrides, validate. Raises SpecError on any problem."""
    p = os.fspath(path)
    raw = read_spec_file(p)[1]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError("job file", f"{p} must hold a mapping of field: value", "see examples/ for the format")
    for key in raw:
        if not isinstance(key, str):
            raise SpecError("job file", f"{p} has a key {_show(key)} that is not a field name",
                            "see examples/ for the fields a spec takes")
    flags = {str(k).replace("-", "_") for k, v in (overrides or {}).items() if v is not None}
    merged = dict(raw)
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    spec = apply_overrides(JobSpec(), merged, require_model=require_model, check=False)
    # A file's field counts as given when it differs from the default: a spec written out in full (dump_spec,
    # what launch ships) carries every default, and a default never contradicts anything.
    defaults = dataclasses.asdict(JobSpec())
    given = {k.replace("-", "_") for k, v in raw.items() if v is not None}
    given = {k for k in given if k == "data" or getattr(spec, k, None) != defaults.get(k)}
    if "method" in flags:  # a flag switching the method overrides the file's LoRA settings, no conflict
        given -= set(_LORA_FIELDS)
    check_conflicts(spec, given | flags)
    # A relative data path in a spec file is relative to that file, so a job folder can move.
    if spec.data.path and not os.path.isabs(spec.data.path):
        candidate = os.path.join(os.path.dirname(os.path.abspath(p)), spec.data.path)
        if os.path.exists(candidate):
            spec.data.path = candidate
    return spec


# ----------------------------------------------------------------------------------------------
# Contradictions between fields that are each valid alone. Only fields the user gave count: every flag, and
# a file's fields whose value is not the default (a default never contradicts). Decided one by one:
#   method full + lora_r/lora_alpha/lora_dropout/lora_targets  refused: full fine-tuning has no adapter
#       (a --method flag over a file's LoRA settings is allowed: the flag says which method runs)
#   method lora/full + double_quant: true                      refused: double quantization is QLoRA's NF4 only
#       (double_quant: false there is harmless: allowed)
#   method full + merge_adapter: true                          refused: there is no adapter to merge
#   parallel fsdp/zero3 + gpus: 1 (one node)                   refused: nothing to shard; ddp, or fsdp-offload
#                                                              (CPU offload) is the single-GPU choice
#   attention flash + precision fp32                           refused: FlashAttention kernels take fp16/bf16 only
#   dataset_tokens + dataset_examples x mean_example_tokens    refused: two dataset sizes, give one
#   eval_steps + data.eval_fraction: 0                         refused: nothing held out to evaluate
#   method qlora + precision fp32                              refused in validate() (QLoRA computes in 16-bit)
#   max_steps + epochs                                         allowed: max_steps wins (HF Trainer semantics)
#   --X and --no-X of one boolean flag, --spot --no-spot       refused by the CLI (planner/inputs/conflicts.py)
# ----------------------------------------------------------------------------------------------
_LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")


def check_conflicts(spec: JobSpec, given: set[str]) -> JobSpec:
    """Raise SpecError when two fields the user gave contradict each other (see the table above)."""
    if spec.method == "full":
        for name in _LORA_FIELDS:
            if name in given:
                raise SpecError(name, "only applies to LoRA/QLoRA, but method is full",
                                f"drop {name}, or use method lora or qlora")
        if spec.merge_adapter:
            raise SpecError("merge_adapter", "method full trains no adapter to merge", "drop merge_adapter")
    if spec.method != "qlora" and "double_quant" in given and spec.double_quant:
        raise SpecError("double_quant", f"only applies to QLoRA's 4-bit weights, but method is {spec.method}",
                        "drop double_quant, or use method qlora")
    if spec.parallel in ("fsdp", "zero3") and spec.world_size == 1 and ("gpus" in given or "nodes" in given):
        raise SpecError("parallel", f"{spec.parallel} shards the model across GPUs, but the job has 1 GPU",
                        "use parallel ddp on one GPU (or fsdp-offload to offload to CPU), or give --gpus 2 or more")
    if spec.attention == "flash" and spec.precision == "fp32":
        raise SpecError("attention", "FlashAttention runs in fp16/bf16 only, but precision is fp32",
                        "use attention sdpa, or precision bf16")
    if "dataset_tokens" in given and ("dataset_examples" in given or "mean_example_tokens" in given):
        raise SpecError("dataset_tokens", "given together with dataset_examples/mean_example_tokens: two sizes",
                        "give dataset_tokens, or dataset_examples and mean_example_tokens, not both")
    if spec.eval_steps is not None and "eval_steps" in given and spec.data.eval_fraction == 0:
        raise SpecError("eval_steps", "set, but data.eval_fraction is 0: nothing is held out to evaluate",
                        "drop eval_steps, or give data.eval_fraction such as 0.05")
    return spec


def dump_spec(spec: JobSpec) -> str:
    """The spec as YAML (what launch ships to the remote machine)."""
    import yaml

    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
