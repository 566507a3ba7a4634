"""Simulation results cached by configuration: $GPUPLAN_CACHE_DIR/simulations/ or ~/.cache/gpuplan/simulations/.

The key is a hash of everything the simulated step depends on: the job fields that shape the step, the
model's config values, the world size, the GPU generation (cuBLAS workspace size), the simulator's
version and the versions of torch, transformers, peft and bitsandbytes. Files are written atomically
(pricing.cache.write_atomic); an unreadable or foreign file is treated as a miss.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from train.spec import JobSpec

# Job fields that do not change one step's memory (data, schedule, output, pricing inputs).
_IRRELEVANT = {"name", "dataset_tokens", "dataset_examples", "mean_example_tokens", "epochs", "gpu", "gpus",
               "nodes", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay", "max_steps",
               "save_steps", "eval_steps", "logging_steps", "seed", "output_dir", "merge_adapter", "data"}


def cache_dir() -> Path:
    env = os.environ.get("GPUPLAN_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "simulations"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuplan" / "simulations"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "peft", "bitsandbytes"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def key(spec: JobSpec, values: dict[str, Any], world: int, sm90: bool, full_depth: bool, version: int) -> str:
    fields = {k: v for k, v in spec.to_dict().items() if k not in _IRRELEVANT}
    payload = {"spec": fields, "config": values, "world": world, "sm90": sm90, "full_depth": full_depth,
               "version": version, "packages": _versions()}
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def path_for(k: str) -> Path:
    return cache_dir() / f"{k}.json"


def load(k: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(path_for(k).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != k or not isinstance(doc.get("result"), dict):
        return None
    return doc["result"]


def store(k: str, result: dict[str, Any]) -> Path:
    from pricing.cache import write_atomic

    return write_atomic(path_for(k), json.dumps({"key": k, "result": result}, sort_keys=True))
