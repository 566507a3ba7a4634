"""Which `pip install 'gpuplan[EXTRA]'` provides a missing module: one table for every command.

Mirrors [project.optional-dependencies] in pyproject.toml (report: pandas/openpyxl/jinja2/weasyprint;
launch: skypilot; train: torch/transformers/peft/bitsandbytes/accelerate/datasets; aws: boto3; gcp:
google-cloud-*; local: nvidia-ml-py; hub: huggingface_hub).
"""
from __future__ import annotations

MODULE_EXTRAS: dict[str, str] = {
    "jinja2": "report", "weasyprint": "report", "pandas": "report", "openpyxl": "report",
    "sky": "launch",
    "torch": "train", "transformers": "train", "peft": "train", "bitsandbytes": "train", "accelerate": "train",
    "datasets": "train", "safetensors": "train",
    "boto3": "aws", "botocore": "aws",
    "google": "gcp",
    "pynvml": "local",
    "huggingface_hub": "hub",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name such as google.cloud.billing), or None if not ours."""
    if not module:
        return None
    return MODULE_EXTRAS.get(module.split(".", 1)[0])


def install_hint(module: str | None) -> str | None:
    extra = extra_for(module)
    if extra is None:
        return None
    return f"{module} is not installed; install it with: pip install 'gpuplan[{extra}]'"
