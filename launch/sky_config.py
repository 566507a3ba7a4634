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
import tempfile
from pathlib import Path
from typing import Any

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
