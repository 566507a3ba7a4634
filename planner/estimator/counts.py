"""Architecture counts the estimator reads many times per plan, computed once per (model, LoRA setting).

A plan evaluates hundreds of memory estimates (every GPU x count, the fit searches, the comparison);
ModelArch recomputes its counts on each call, so the estimator reads them through these caches.
ModelArch is a frozen dataclass, hence hashable.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from planner.models import LinearGroup, ModelArch
from train.spec import JobSpec


@dataclass(frozen=True)
class ArchCounts:
    total: int
    active: int
    embedding: int
    lm_head: int
    quantized: int
    unquantized: int
    groups: tuple[LinearGroup, ...]
    largest_linear: int  # weights of the largest single linear layer


@dataclass(frozen=True)
class LoraCounts:
    params: int
    targets: frozenset[str]
    rank_per_token: int  # sum over targeted linears of (active instances) per layer, times r: lora_B inputs
    modules_per_layer: int


# ModelArch's generated __hash__ hashes every field on each lookup, and the estimator reads these counts
# ~6,000 times a plan (~10 % of plan_job's CPU time went to hashing). A plan passes one ModelArch object
# throughout, so the caches below are looked up by identity first; the object is kept in the entry, so its
# id cannot be reused while the entry exists. The lru_caches stay the by-value fallback.
_BY_ID_MAX = 64
_arch_by_id: dict[int, tuple[ModelArch, "ArchCounts"]] = {}
_lora_by_id: dict[tuple[int, int, str | tuple[str, ...]], tuple[ModelArch, "LoraCounts"]] = {}


def arch_counts(arch: ModelArch) -> ArchCounts:
    hit = _arch_by_id.get(id(arch))
    if hit is not None and hit[0] is arch:
        return hit[1]
    counts = _arch_counts(arch)
    if len(_arch_by_id) >= _BY_ID_MAX:
        _arch_by_id.clear()
    _arch_by_id[id(arch)] = (arch, counts)
    return counts


@lru_cache(maxsize=64)
def _arch_counts(arch: ModelArch) -> ArchCounts:
    groups = tuple(arch.linear_groups())
    return ArchCounts(total=arch.total_params(), active=arch.active_params(), embedding=arch.embedding_params(),
                      lm_head=arch.lm_head_params(), quantized=arch.quantized_params(),
                      unquantized=arch.unquantized_params(), groups=groups,
                      largest_linear=max(g.in_features * g.out_features for g in groups))


@lru_cache(maxsize=256)
def _lora_counts(arch: ModelArch, r: int, targets: str | tuple[str, ...]) -> LoraCounts:
    spec_targets = targets if isinstance(targets, str) else list(targets)
    names = frozenset(arch.resolve_targets(spec_targets))
    per_token = sum(g.active for g in arch_counts(arch).groups if g.name in names) * r
    return LoraCounts(params=arch.lora_params(r, spec_targets), targets=names, rank_per_token=per_token,
                      modules_per_layer=len(names))


def lora_counts(arch: ModelArch, r: int, targets: str | list[str]) -> LoraCounts:
    t = targets if isinstance(targets, str) else tuple(targets)
    key = (id(arch), r, t)
    hit = _lora_by_id.get(key)
    if hit is not None and hit[0] is arch:
        return hit[1]
    counts = _lora_counts(arch, r, t)
    if len(_lora_by_id) >= _BY_ID_MAX:
        _lora_by_id.clear()
    _lora_by_id[key] = (arch, counts)
    return counts


def trainable_params(arch: ModelArch, spec: JobSpec) -> int:
    """Parameters the optimizer updates: all of them for full fine-tuning, else the LoRA adapters."""
    if spec.method == "full":
        return arch_counts(arch).total
    return lora_counts(arch, spec.lora_r, spec.lora_targets).params
