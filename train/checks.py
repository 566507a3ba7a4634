"""Trainer checks that run before torch is imported or any model is loaded (one line, exit 2, nothing written).

The job spec (train.spec) validates types, choices and signs; these add what only the trainer cares about:
numbers that would make a run hang or never end, fields set to null in the file (which the spec loader would
otherwise replace by their defaults), and precision choices that train badly without saying so.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from train.spec import DataSpec, JobSpec, SpecError

# Bounds far beyond any real job but far below what hangs a loop or overflows a tensor index:
# 10^5 micro batches per optimizer step (the largest published recipes use a few hundred), 10^8 optimizer
# steps (a year at 3 steps/s), 10^6 tokens per sequence, 10^4 rows per micro batch, LoRA rank 2^16.
LIMITS = {"grad_accum": 100_000, "max_steps": 100_000_000, "seq_len": 1_000_000, "batch_size": 10_000,
          "lora_r": 65_536, "lora_alpha": 1_000_000, "logging_steps": 100_000_000, "save_steps": 100_000_000,
          "eval_steps": 100_000_000, "epochs": 100_000.0, "save_every_minutes": 1_000_000.0}


def check_raw_nulls(raw: Mapping[str, Any]) -> None:
    """`lora_r: null` in a file means a value was meant and lost; only fields whose default is None may be null."""
    defaults = JobSpec()
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name == "data" and isinstance(value, Mapping):
            data_defaults = DataSpec()
            for dkey, dval in value.items():
                dname = str(dkey).replace("-", "_")
                if dval is None and getattr(data_defaults, dname, None) is not None:
                    raise SpecError(f"data.{dname}", "is null", "give a value or remove the line")
            continue
        if value is None and name != "data" and hasattr(defaults, name) and getattr(defaults, name) is not None:
            raise SpecError(name, "is null", f"give a value or remove the line (default {getattr(defaults, name)!r})")


def check_trainable(spec: JobSpec) -> list[str]:
    """Raise SpecError for a job the trainer cannot run sensibly; return warnings (one line each)."""
    for name, limit in LIMITS.items():
        value = getattr(spec, name)
        if value is not None and value > limit:
            raise SpecError(name, f"{value:g} is beyond any trainable job (limit {limit:g})", "give a realistic value")
    if spec.parallel == "zero3":
        raise SpecError("parallel", "DeepSpeed ZeRO-3 is not part of the bundled trainer", "use fsdp (equivalent sharding)")
    if not spec.data.path:
        raise SpecError("data.path", "missing", "set data: {path: train.jsonl} in the job file or pass --data-path")
    warnings = []
    if spec.method == "full" and spec.precision == "bf16":
        warnings.append("precision: bf16 full fine-tuning keeps weights and Adam moments in bf16 without stochastic "
                        "rounding or Kahan summation, so updates below 1/256 of a weight are lost; use "
                        "precision: bf16-mixed for fp32 master weights")
    if spec.max_grad_norm <= 0:
        warnings.append("max_grad_norm: <= 0 means no gradient clipping (the norm is still logged)")
    if spec.data.chat_template and not os.path.isfile(os.path.expanduser(spec.data.chat_template)) \
            and "{{" not in spec.data.chat_template and "{%" not in spec.data.chat_template:
        raise SpecError("data.chat_template", f"{spec.data.chat_template!r} is neither a file nor a Jinja template",
                        "give the path of a .jinja file or the template text itself")
    return warnings
