"""Read a job from a gpuplan job spec or a foreign tool's config; write a job as a foreign config."""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

from planner.imports.common import Mapper, clean, hint_line, read_hints
from planner.imports.detect import FORMATS, detect_format
from planner.imports.report import ImportReport
from train.spec import JobSpec, SpecError, apply_overrides, load_spec, read_spec_file

EXPORT_FORMATS = ("axolotl", "llama-factory", "trl")
IMPORT_FORMATS = ("axolotl", "llama-factory", "trl", "torchtune")
# Fields compared by a round trip and written to the hint line when a tool's config cannot express them.
_JOB_FIELDS = [f for f in JobSpec.__dataclass_fields__ if f not in ("data", "stack")]


def _module(fmt: str) -> Any:
    from planner.imports import axolotl, llama_factory, torchtune, trl

    return {"axolotl": axolotl, "llama-factory": llama_factory, "trl": trl, "torchtune": torchtune}[fmt]


def read_config(path: str) -> tuple[str, Any]:
    """The text and parsed YAML/JSON of a config file, read as safely as a job spec (regular file, size limit,
    no YAML anchors, bounded nesting, no duplicate keys); errors as one line naming the file."""
    return read_spec_file(path, "YAML or JSON file")


def import_config(raw: Mapping[str, Any], fmt: str, *, path: str = "", text: str = "",
                  given: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Mapper]:
    """Map a parsed foreign config onto job-spec fields. `given`: the user's flag overrides (they may supply
    what the config lacks). Returns (fields, the mapper with its report)."""
    if fmt not in IMPORT_FORMATS:
        raise SpecError("--config-format", f"'{fmt}' is not an importable format", f"use one of {', '.join(FORMATS)}")
    if not isinstance(raw, Mapping):
        raise SpecError("config", f"a {fmt} config must be a mapping of settings, got {type(raw).__name__}",
                        "check the file")
    mod = _module(fmt)
    base_dir = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    m = Mapper(raw, fmt, mod.LABEL, given=given, base_dir=base_dir)
    mod.read(m, base_dir)
    model = str(m.fields.get("model") or "")
    if m.fields.get("method") == "lora" and re.search(r"bnb[-_]?4bit", model, re.I):
        # a bitsandbytes pre-quantized re-upload (unsloth/...-bnb-4bit) loads its base in 4 bit whatever the flags
        m.set("method", "qlora", m.sources.get("model", "model"), "pre-quantized 4-bit weights: the base loads in 4 bit")
        m.default("double_quant", True, "bnb-4bit re-uploads are saved with double quantization")
    for k, v in read_hints(text).items():
        m.set(k, v, "# gpuplan: comment", "kept by gpuplan export")
    m.default("stack", mod.STACK, f"{mod.LABEL} runs the job")  # the training stack (train.spec.STACKS)
    m.report.path = path
    m.report.stack = str(m.fields.get("stack"))
    return m.fields, m


def _spec_from_fields(fields: Mapping[str, Any], overrides: Mapping[str, Any], m: Mapper,
                      require_model: bool) -> JobSpec:
    over = {str(k).replace("-", "_"): v for k, v in overrides.items() if v is not None}
    if not (fields.get("model") or over.get("model")) and require_model:
        raise SpecError("model", f"the {m.label} config names no model", "add it to the config, or give --model")
    merged = {**fields, **over}
    try:
        return apply_overrides(JobSpec(), merged, require_model=require_model)
    except SpecError as exc:
        source = m.sources.get(exc.field)
        if source and exc.field not in over:
            raise SpecError(f"{source} ({m.label}, job field {exc.field})", exc.problem, exc.fix) from None
        raise


def _missing(spec: JobSpec, m: Mapper) -> None:
    if spec.total_tokens() is not None:
        return
    if spec.max_steps:
        per_gpu = spec.batch_size * spec.grad_accum * spec.seq_len
        m.missing("dataset_tokens", f"the {m.label} config stops after {spec.max_steps} steps but gives no data size: "
                                    f"give --dataset-tokens (at most {spec.max_steps} x {per_gpu} tokens per GPU "
                                    "when packed) for time and cost")
        return
    m.missing("dataset_tokens", f"the {m.label} config names its data but not its size: give --dataset-tokens N "
                                "(or --dataset-examples N --mean-example-tokens M) for time and cost")


def load_job(path: str, overrides: Mapping[str, Any] | None = None, *, config_format: str | None = None,
             require_model: bool = True) -> tuple[JobSpec, ImportReport | None]:
    """The job in `path` (a gpuplan job spec or a foreign config) with `overrides` (flags) applied.
    Every problem is one SpecError line (control characters in the user's keys shown escaped)."""
    try:
        return _load_job(path, overrides, config_format, require_model)
    except SpecError as exc:
        raise SpecError(clean(exc.field), clean(exc.problem), clean(exc.fix)) from None


def _load_job(path: str, overrides: Mapping[str, Any] | None, config_format: str | None,
              require_model: bool) -> tuple[JobSpec, ImportReport | None]:
    fmt = (config_format or "auto").strip().lower()
    if fmt not in ("auto",) + FORMATS:
        raise SpecError("--config-format", f"'{config_format}' is not a known format",
                        f"use auto or one of {', '.join(FORMATS)}")
    if fmt == "gpuplan":
        return load_spec(path, overrides, require_model=require_model), None
    text, raw = read_config(path)
    if fmt == "auto":
        fmt, evidence = detect_format(raw, os.fspath(path))
        if fmt == "gpuplan":
            return load_spec(path, overrides, require_model=require_model), None
    else:
        evidence = ["--config-format"]
    return job_from_mapping(raw, fmt, overrides, path=os.fspath(path), text=text, detected_by=evidence,
                            require_model=require_model)


def job_from_mapping(raw: Any, fmt: str, overrides: Mapping[str, Any] | None = None, *, path: str = "",
                     text: str = "", detected_by: list[str] | None = None,
                     require_model: bool = True) -> tuple[JobSpec, ImportReport]:
    """The job of a parsed foreign config, flags applied: what `load_job` does after reading the file."""
    fields, m = import_config(raw, fmt, path=path, text=text, given=overrides)
    m.report.detected_by = list(detected_by or [])
    spec = _spec_from_fields(fields, overrides or {}, m, require_model)
    _missing(spec, m)
    return spec, m.report


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------
def hf_target_names(spec: JobSpec) -> JobSpec:
    """The job with its LoRA targets spelled as the model's transformers module names (what PEFT's
    target_modules matches), name by name in the given order: torchtune's output_proj -> o_proj, `attn` ->
    q_proj, k_proj, v_proj, o_proj. Names the planner cannot place (or an unknown model) stay as written."""
    import dataclasses

    if spec.method == "full" or spec.lora_targets == "all-linear":
        return spec
    try:
        from planner.models import resolve_model

        arch = resolve_model(spec.model)
    except SpecError:
        return spec
    out: list[str] = []
    for name in spec.lora_targets:
        try:
            names = arch.peft_target_modules([name])
        except SpecError:
            names = [name]
        out += [n for n in names if n not in out]
    return spec if out == list(spec.lora_targets) else dataclasses.replace(spec, lora_targets=out)


def export_config(spec: JobSpec, to: str) -> tuple[str, list[str]]:
    """(YAML text of `spec` as a `to` config, the job fields only its '# gpuplan:' comment line keeps).

    The tool's config is written first; whatever it cannot express (dataset size, GPU count, a precision the
    tool has no switch for) is found by importing the result again and goes into the comment line, so
    importing the file gives the same job."""
    import yaml

    if to not in EXPORT_FORMATS:
        raise SpecError("--to", f"'{to}' is not an export format", f"use one of {', '.join(EXPORT_FORMATS)}")
    spec = hf_target_names(spec)
    mod = _module(to)
    config = mod.export(spec)
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=120)
    fields, m = import_config(yaml.safe_load(body), to, text=body)
    back = _spec_from_fields({k: v for k, v in fields.items() if k != "stack"}, {}, m, require_model=True)
    want, got = spec.to_dict(), back.to_dict()
    extra = {k: want[k] for k in _JOB_FIELDS if want[k] != got[k] and want[k] is not None}
    header = [f"# {mod.LABEL} config written by `gpuplan export --to {to}` from job '{spec.name or spec.model}'."]
    if extra:
        header.append(f"# The next line keeps what {mod.LABEL} has no setting for; {mod.LABEL} ignores it, "
                      "`gpuplan plan` reads it back.")
        header.append(hint_line(extra))
    return "\n".join(header) + "\n" + body, sorted(extra)
