"""Tell SkyPilot what local GPUs cost, so its own cost reports (`sky status`, `sky cost-report`) are not $0.

SkyPilot 0.14 prices Kubernetes (and SSH node pools, which it serves as Kubernetes contexts `ssh-<pool>`)
from `~/.sky/config.yaml`: `kubernetes.pricing` for every context, overridden per context by
`kubernetes.context_configs.<context>.pricing`, each `{cpu, memory, accelerators: {<GPU>: $/GPU/hour}}`
(sky/catalog/kubernetes_catalog.py `_get_pricing`, schema `_PRICING_SCHEMA` in sky/utils/schemas.py).
We write the per-context entry for the one context launched on, and leave every other key as it was.
The file is rewritten atomically; $SKYPILOT_GLOBAL_CONFIG relocates it as it does for SkyPilot.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pricing.cache import write_atomic
from train.spec import SpecError


def config_path() -> Path:
    env = os.environ.get("SKYPILOT_GLOBAL_CONFIG")
    return Path(os.path.expanduser(env or "~/.sky/config.yaml"))


def set_local_gpu_price(context: str, gpu: str, usd_per_gpu_hour: float, path: Path | None = None) -> Path:
    """Set kubernetes.context_configs.<context>.pricing.accelerators.<gpu> = usd_per_gpu_hour."""
    import yaml

    if usd_per_gpu_hour < 0:
        raise SpecError("local profile", f"negative GPU price {usd_per_gpu_hour}", "fix the local cost profile")
    path = Path(path or config_path())
    config: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raise SpecError(str(path), "is not valid YAML; gpuplan will not rewrite it",
                            "fix the file, then launch again") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError(str(path), "is not a mapping", "fix the SkyPilot config file")
        config = loaded or {}
    k8s = config.setdefault("kubernetes", {})
    ctx = k8s.setdefault("context_configs", {}).setdefault(context, {})
    ctx.setdefault("pricing", {}).setdefault("accelerators", {})[gpu] = round(float(usd_per_gpu_hour), 6)
    # a new config is private (it may come to hold credentials' paths); an existing one keeps its mode
    return write_atomic(path, yaml.safe_dump(config, sort_keys=False), mode=0o600)
