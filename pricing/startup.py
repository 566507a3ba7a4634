"""Start-up and tear-down: the minutes a run pays for before the first step and after the last one.

Per option: provisioning (getting the VM), setup (installing the `train` extra, or pulling a prebuilt image),
downloading the model weights and the dataset, and uploading the result; billing rounds the whole up to the
provider's granularity and minimum. Spot capacity pays provisioning, setup and the weights again after every
expected preemption (pricing.spot gives how many).

Every figure is an assumption with its source (`assumptions()`); change them with `gpuplan plan --startup
KEY=VALUE` (e.g. `--startup setup_minutes=1` for a prebuilt image, `--startup weights_cached=true` for weights
already on a volume). Standard library only.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from pricing.errors import PricingInputError

MB = 1e6


@dataclass(frozen=True)
class ProviderStartup:
    provision_minutes: float  # request -> SSH-able VM with the GPU driver
    download_mb_per_s: float  # sustained download from the Hugging Face hub / object store
    billing_seconds: int  # granularity of the bill
    minimum_seconds: int  # least billed per run
    source: str


# Sources, in words (read 2026-11): provisioning from SkyPilot's launch logs as users report them (2024-2025)
# and the providers' docs; download speeds from Hugging Face hub downloads on cloud VMs as reported in hub
# issues and provider forums (2024-2025: 100-300 MB/s on the big three without hf_transfer); billing from the
# providers' price pages.
PROVIDERS: dict[str, ProviderStartup] = {
    "aws": ProviderStartup(4.0, 150.0, 1, 60, "EC2 GPU VM via SkyPilot ~3-5 min (SkyPilot launch logs, 2024-25); "
                           "EC2 per-second billing, 60 s minimum (AWS EC2 pricing page, 2025)"),
    "gcp": ProviderStartup(4.0, 150.0, 1, 60, "GCE GPU VM via SkyPilot ~3-5 min (SkyPilot launch logs, 2024-25); "
                           "per-second billing, 1 min minimum (Google Compute Engine pricing docs, 2025)"),
    "azure": ProviderStartup(6.0, 120.0, 60, 60, "Azure GPU VM ~5-7 min to ready (SkyPilot launch logs, 2024-25); "
                             "per-minute billing (Azure Virtual Machines pricing FAQ, 2025)"),
    "lambda": ProviderStartup(6.0, 120.0, 60, 60, "Lambda Cloud instances boot in ~5-10 min (Lambda docs, 2025); "
                              "billed in one-minute increments (Lambda pricing page, 2025)"),
    "runpod": ProviderStartup(2.0, 80.0, 1, 60, "RunPod pods start in ~1-3 min with a cached image (RunPod docs, "
                              "2025); per-second billing, 1 min assumed minimum (RunPod pricing page, 2025)"),
    "local": ProviderStartup(0.0, 1000.0, 1, 0, "own machine: nothing to provision; weights read from local disk "
                             "at ~1 GB/s (NVMe, datasheet order of magnitude); nothing billed per run"),
}
DEFAULT_PROVIDER = ProviderStartup(5.0, 100.0, 60, 60, "unknown provider: middle of the ranges above")


@dataclass(frozen=True)
class StartupAssumptions:
    # pip install of the `train` extra (torch + transformers + peft + bitsandbytes wheels, ~3 GB) on a fresh VM:
    # 3-5 min (pip logs on cloud VMs, 2025); a prebuilt image only pulls and starts: ~1 min.
    setup_minutes: float = 4.0
    prebuilt_image_setup_minutes: float = 1.0
    prebuilt_image: bool = False
    weights_cached: bool = False  # weights already on a mounted volume or local disk: no download
    # Loading the checkpoint into GPU memory and quantizing (QLoRA), separate from the download: ~1 min for 8B.
    load_minutes: float = 1.0
    # What is uploaded at the end: an adapter (LoRA/QLoRA) is tens of MB; a full fine-tune uploads the weights.
    upload_mb_per_s: float = 100.0
    dataset_bytes: float | None = None  # None: from the job's tokens (4 bytes of text per token, ~JSONL size)
    bytes_per_token: float = 4.0  # English text in UTF-8 JSONL: ~4 bytes/token (OpenAI tokenizer guidance)
    provision_minutes: float | None = None  # override every provider's
    download_mb_per_s: float | None = None  # override every provider's

    def with_overrides(self, overrides: Mapping[str, Any]) -> "StartupAssumptions":
        """From `--startup KEY=VALUE` pairs; bad keys or values raise PricingInputError naming them."""
        known = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            name = str(key).strip().replace("-", "_")
            if name not in known:
                import difflib

                close = difflib.get_close_matches(name, list(known), n=1)
                raise PricingInputError("startup", f"unknown start-up assumption {key!r}",
                                        f"did you mean {close[0]}?" if close else f"use one of {', '.join(known)}")
            if name in ("prebuilt_image", "weights_cached"):
                text = str(raw).strip().lower()
                if text not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise PricingInputError(f"startup {name}", f"expected true or false, got {raw!r}",
                                            f"e.g. --startup {name}=true")
                changes[name] = text in ("true", "yes", "1", "on")
                continue
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise PricingInputError(f"startup {name}", f"expected a number, got {raw!r}",
                                        f"e.g. --startup {name}=2") from None
            if not math.isfinite(value) or value < 0 or (name.endswith("mb_per_s") and value == 0) \
                    or (name == "bytes_per_token" and value == 0):
                raise PricingInputError(f"startup {name}", f"must be a positive finite number, got {raw!r}",
                                        f"e.g. --startup {name}=2")
            changes[name] = value
        return dataclasses.replace(self, **changes)


@dataclass
class Startup:
    """Start-up and tear-down of one run on one option, in hours."""

    provision_hours: float
    setup_hours: float
    weights_hours: float
    dataset_hours: float
    upload_hours: float
    restarts_hours: float = 0.0  # spot: expected preemptions x (provision + setup + weights + load)

    @property
    def parts_rounded(self) -> dict[str, float]:
        """Hours by part, to 1/10000 h (0.36 s): the `startup` block of a plan option."""
        return {"provision": round(self.provision_hours, 4), "setup": round(self.setup_hours, 4),
                "weights": round(self.weights_hours, 4), "dataset": round(self.dataset_hours, 4),
                "upload": round(self.upload_hours, 4), "spot_restarts": round(self.restarts_hours, 4)}

    @property
    def hours(self) -> float:
        return (self.provision_hours + self.setup_hours + self.weights_hours + self.dataset_hours
                + self.upload_hours + self.restarts_hours)


def provider_startup(provider: str) -> ProviderStartup:
    return PROVIDERS.get(provider, DEFAULT_PROVIDER)


def startup(provider: str, *, weights_bytes: float, output_bytes: float, dataset_tokens: int | None,
            expected_preemptions: float = 0.0, a: StartupAssumptions = StartupAssumptions(),
            dataset_file_bytes: float | None = None) -> Startup:
    """The start-up of one run of a job on `provider` (cloud) or "local"."""
    p = provider_startup(provider)
    local = provider == "local"
    bw = (a.download_mb_per_s if a.download_mb_per_s is not None and not local else p.download_mb_per_s) * MB
    provision = 0.0 if local else (a.provision_minutes if a.provision_minutes is not None else p.provision_minutes)
    setup = 0.0 if local else (a.prebuilt_image_setup_minutes if a.prebuilt_image else a.setup_minutes)
    weights = 0.0 if (a.weights_cached and not local) else weights_bytes / bw / 60
    weights += a.load_minutes
    # the user's figure, else the size of a local data file (shipped with the job), else tokens x bytes/token
    data_bytes = a.dataset_bytes if a.dataset_bytes is not None else (
        dataset_file_bytes if dataset_file_bytes is not None else (dataset_tokens or 0) * a.bytes_per_token)
    dataset = 0.0 if local else data_bytes / bw / 60
    upload = 0.0 if local else output_bytes / (a.upload_mb_per_s * MB) / 60
    restart = expected_preemptions * (provision + setup + weights)
    return Startup(provision / 60, setup / 60, weights / 60, dataset / 60, upload / 60, restart / 60)


def billed_hours(provider: str, hours: float) -> float:
    """Hours on the bill: rounded up to the provider's granularity, at least its minimum."""
    p = provider_startup(provider)
    seconds = max(hours * 3600, p.minimum_seconds)
    if p.billing_seconds > 1:
        seconds = math.ceil(seconds / p.billing_seconds - 1e-9) * p.billing_seconds
    return seconds / 3600


def assumptions(a: StartupAssumptions, providers: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in providers:
        p = provider_startup(name)
        if name == "local":
            rows.append({"name": "start-up, local: provisioning and setup", "value": 0, "unit": "min",
                         "category": "finance", "source": p.source})
            continue
        rows += [
            {"name": f"start-up, {name}: provisioning", "value": a.provision_minutes if a.provision_minutes
             is not None else p.provision_minutes, "unit": "min", "category": "finance", "source": p.source},
            {"name": f"start-up, {name}: download bandwidth", "value": a.download_mb_per_s if a.download_mb_per_s
             is not None else p.download_mb_per_s, "unit": "MB/s", "category": "finance",
             "source": "Hugging Face hub downloads on cloud VMs as reported in hub issues and provider forums "
                       "(2024-25)"},
            {"name": f"billing, {name}: granularity", "value": p.billing_seconds, "unit": "s",
             "category": "finance", "source": p.source},
            {"name": f"billing, {name}: minimum per run", "value": p.minimum_seconds, "unit": "s",
             "category": "finance", "source": p.source},
        ]
    rows += [
        {"name": "start-up: setup (install the train extra)" + (" - prebuilt image" if a.prebuilt_image else ""),
         "value": a.prebuilt_image_setup_minutes if a.prebuilt_image else a.setup_minutes, "unit": "min",
         "category": "finance", "source": "pip install of torch, transformers, peft, bitsandbytes (~3 GB of wheels) "
                                          "on a fresh cloud VM, pip logs 2025; a prebuilt image ~1 min"},
        {"name": "start-up: model load into GPU memory", "value": a.load_minutes, "unit": "min",
         "category": "finance", "source": "checkpoint load and 4-bit quantization of an 8B model, ~1 min "
                                          "(bitsandbytes/transformers load logs, 2025)"},
        {"name": "start-up: weights already cached", "value": a.weights_cached, "unit": "bool",
         "category": "finance", "source": "user setting (--startup weights_cached=true)"},
        {"name": "start-up: dataset bytes per token", "value": a.bytes_per_token, "unit": "B/token",
         "category": "finance", "source": "~4 characters of English text per token (OpenAI tokenizer guidance, 2024)"},
        {"name": "tear-down: upload bandwidth", "value": a.upload_mb_per_s, "unit": "MB/s", "category": "finance",
         "source": "object-store upload from a cloud VM, single stream (S3/GCS docs order of magnitude, 2025)"},
    ]
    return rows
