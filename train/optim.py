"""Optimizer and learning-rate schedule for a job (spec.optimizer, spec.lr_scheduler, spec.warmup_ratio)."""
from __future__ import annotations

import math
import warnings

from train.spec import JobSpec


def build_optimizer(params: list, spec: JobSpec, device_type: str):
    """adamw (torch, fused on CUDA) | adamw-8bit | paged-adamw-8bit (bitsandbytes) | sgd (momentum 0.9).

    Paged optimizers page their state to host memory under GPU memory pressure (CUDA unified memory);
    on the CPU there is nothing to page, so paged-adamw-8bit runs bitsandbytes' AdamW8bit there.
    """
    import torch

    if spec.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay,
                                 fused=device_type == "cuda")
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.learning_rate, momentum=0.9, weight_decay=spec.weight_decay)
    import bitsandbytes as bnb

    if spec.optimizer == "paged-adamw-8bit" and device_type == "cuda":
        return bnb.optim.PagedAdamW8bit(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bnb.optim.AdamW8bit(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)


def warmup_steps(spec: JobSpec, total_steps: int) -> int:
    return int(math.ceil(spec.warmup_ratio * total_steps))


def lr_factor(step: int, total_steps: int, warmup: int, kind: str) -> float:
    """Multiplier on the peak learning rate at optimizer step `step` (0-based): linear warmup, then decay to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    progress = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, spec: JobSpec, total_steps: int):
    import torch

    warm = warmup_steps(spec, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, warm, spec.lr_scheduler))
