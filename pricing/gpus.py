"""Canonical GPU names (SkyPilot accelerator names) and the aliases catalogs and users write for them.

Memory per GPU (GiB, as the driver reports the nominal size) is from the vendors' datasheets; the planner
keeps its own GPU table for speed/memory modelling, this one only labels offers.
"""
from __future__ import annotations

import re

from pricing.errors import PricingInputError

# canonical name -> memory per GPU in GiB (NVIDIA/AMD datasheets: H100 SXM 80 GB, H200 141 GB, B200 180 GB,
# GH200 96 GB HBM3, MI300X 192 GB, B300 288 GB, Quadro RTX 6000 24 GB, ...)
GPU_MEMORY_GIB: dict[str, float] = {
    "K80": 12, "P100": 16, "T4": 16, "V100": 16, "V100-32GB": 32, "A10G": 24, "A10": 24, "L4": 24,
    "L40S": 48, "L40": 48, "A40": 48, "A100": 40, "A100-80GB": 80, "H100": 80, "H200": 141, "GH200": 96,
    "B200": 180, "B300": 288, "RTX3090": 24, "RTX4090": 24, "RTX5090": 32, "RTXA4000": 16, "RTXA5000": 24,
    "RTXA6000": 48, "RTX6000": 24, "RTX6000-Ada": 48, "MI300X": 192,
}
CANONICAL = tuple(GPU_MEMORY_GIB)

# catalog/user spellings -> canonical (compared after upper-casing and dropping spaces/underscores)
_ALIASES: dict[str, str] = {
    "A100-40GB": "A100", "A100-SXM4-40GB": "A100", "A100-40G": "A100", "A100-PCIE": "A100",
    "A100-80G": "A100-80GB", "A100-SXM4-80GB": "A100-80GB", "A100-80GB-SXM": "A100-80GB",
    "H100-80GB": "H100", "H100-SXM": "H100", "H100-SXM5": "H100", "H100-PCIE": "H100", "H100-NVL": "H100",
    "H100-MEGA": "H100", "H100-MEGA-80GB": "H100", "H100-HBM3": "H100",
    "H200-SXM": "H200", "H200-141GB": "H200", "B200-SXM": "B200",
    "V100-16GB": "V100", "V100-SXM2": "V100", "V100-32G": "V100-32GB",
    "A6000": "RTXA6000", "RTX-A6000": "RTXA6000", "A5000": "RTXA5000", "RTX-A5000": "RTXA5000",
    "A4000": "RTXA4000", "RTX-A4000": "RTXA4000",
    "RTX6000ADA": "RTX6000-Ada", "RTX-6000-ADA": "RTX6000-Ada", "L40S-48GB": "L40S",
    "GEFORCE-RTX-4090": "RTX4090", "GEFORCE-RTX-3090": "RTX3090", "TESLA-T4": "T4", "TESLA-V100": "V100",
    "MI300X-192GB": "MI300X", "AMD-INSTINCT-MI300X": "MI300X",
    "3090": "RTX3090", "4090": "RTX4090", "6000ADA": "RTX6000-Ada", "T4-16GB": "T4", "L4-24GB": "L4",
    "A10G-24GB": "A10G",
}


def _key(name: str) -> str:
    s = re.sub(r"[\s_]+", "-", name.strip().upper())
    s = s.replace("NVIDIA-", "").replace("-GPU", "")
    return s


_LOOKUP: dict[str, str] = {}
for _c in CANONICAL:
    _LOOKUP[_key(_c)] = _c
    _LOOKUP[_key(_c).replace("-", "")] = _c
for _a, _c in _ALIASES.items():
    _LOOKUP[_key(_a)] = _c
    _LOOKUP[_key(_a).replace("-", "")] = _c


_RESOLVED: dict[str, str | None] = {}  # name -> canonical_gpu(name): a plan resolves ~1,400 names, ~40 distinct


def canonical_gpu(name: str | None) -> str | None:
    """Canonical name for a catalog or user GPU name, or None when unknown ('RTX 4090' -> 'RTX4090')."""
    if isinstance(name, str):
        if name not in _RESOLVED:
            if len(_RESOLVED) >= 4096:  # bounded: a long-lived process may see many user spellings
                _RESOLVED.clear()
            _RESOLVED[name] = _resolve(name)
        return _RESOLVED[name]
    return _resolve(name)


def _resolve(name: str | None) -> str | None:
    if not name or not str(name).strip():
        return None
    k = _key(str(name))
    hit = _LOOKUP.get(k) or _LOOKUP.get(k.replace("-", ""))
    if hit is None:  # driver names: 'NVIDIA H100 80GB HBM3', 'NVIDIA RTX 6000 Ada Generation'
        parts = k.split("-")
        for n in range(len(parts) - 1, 0, -1):
            pre = "-".join(parts[:n])
            hit = _LOOKUP.get(pre) or _LOOKUP.get(pre.replace("-", ""))
            if hit:
                break
    return hit


def require_gpu(name: str, field_name: str = "gpu") -> str:
    """Canonical name or a PricingInputError naming the known GPUs."""
    gpu = canonical_gpu(name)
    if gpu is None:
        import difflib

        close = difflib.get_close_matches(_key(name), list(CANONICAL), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PricingInputError(field_name, f"unknown GPU {name!r}", f"{hint}use one of {', '.join(CANONICAL)}")
    return gpu


def gpu_memory_gib(gpu: str) -> float | None:
    return GPU_MEMORY_GIB.get(gpu)
