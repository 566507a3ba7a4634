"""The GPU table: memory, dense 16-bit tensor throughput, bandwidth, interconnect.

Canonical names follow SkyPilot's accelerator names, so a plan's GPU is a SkyPilot `accelerators:` value.

Sources (vendor datasheets / architecture whitepapers; dense figures, no 2:4 sparsity):
- T4: NVIDIA T4 datasheet — 65 TFLOPS mixed-precision FP16/FP32, 320 GB/s, PCIe Gen3.
- V100 (SXM2): NVIDIA V100 datasheet — 125 TFLOPS tensor, 900 GB/s, NVLink 300 GB/s.
- A10G: AWS G5 / NVIDIA A10G — 70 TFLOPS BF16 tensor (dense; the A10G is clocked below the A10), 600 GB/s, PCIe Gen4.
- L4: NVIDIA L4 datasheet — 121 TFLOPS BF16 (242 sparse), 300 GB/s.
- L40S: NVIDIA L40S datasheet — 362 TFLOPS BF16 (733 sparse), 864 GB/s.
- A100: NVIDIA A100 datasheet — 312 TFLOPS BF16, 1555 GB/s (40GB) / 2039 GB/s (80GB SXM), NVLink 600 GB/s.
- H100 (SXM): NVIDIA H100 datasheet — 989 TFLOPS BF16, 3.35 TB/s, NVLink 900 GB/s.
- H200 (SXM): NVIDIA H200 datasheet — 989 TFLOPS BF16, 4.8 TB/s, 141 GB, NVLink 900 GB/s.
- B200 (HGX): NVIDIA DGX B200 — 2.25 PFLOPS dense BF16 per GPU, 8 TB/s, NVLink 1.8 TB/s.
- RTX 3090: NVIDIA Ampere GA102 whitepaper — BF16 tensor with FP32 accumulate 71 TFLOPS (GeForce rate), 936 GB/s.
- RTX 4090: NVIDIA Ada whitepaper — FP16/BF16 tensor with FP32 accumulate 165.2 TFLOPS, 1008 GB/s.
- RTX A5000: datasheet — 111.1 TFLOPS tensor (222.2 sparse), 768 GB/s.
- RTX A6000: datasheet — 154.8 TFLOPS tensor (309.7 sparse), 768 GB/s.
- RTX 6000 Ada: datasheet — 364.2 TFLOPS FP16/BF16 tensor (dense), 960 GB/s.
- MI300X: AMD datasheet — 1307.4 TFLOPS BF16 dense, 5.3 TB/s, Infinity Fabric 896 GB/s aggregate (~128 GB/s per link).
Memory capacities are what the driver reports as total memory (nvidia-smi MiB / 1024), not the marketing GB.
GeForce cards have no peer-to-peer over PCIe: collectives stage through host memory (~8 GB/s effective).
`gemm_efficiency`: large-GEMM fraction of peak from public cuBLAS/hipBLASLt sweeps (A100 ~275 of 312 TFLOP/s,
H100 SXM ~700-750 of 989, L40S ~250 of 362, L4 ~75 of 121, MI300X ~700 of 1307).
Interconnect bandwidth is per GPU, one direction, for the collective traffic of data parallelism: NVLink figures are
half the bidirectional datasheet number; PCIe Gen3/4/5 x16 ≈ 16/32/64 GB/s before host-bridge contention.
"""
from __future__ import annotations

from dataclasses import dataclass

from pricing.gpus import canonical_gpu as _any_gpu_name
from train.spec import SpecError


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: float
    bf16_tflops: float  # dense 16-bit tensor TFLOP/s (fp16 where there is no bf16)
    mem_bw_gbs: float
    bf16: bool  # native bf16 (Ampere and later); otherwise fp16-mixed is used
    interconnect: str  # "nvlink", "pcie3", "pcie4", "pcie5", "infinity-fabric"
    link_gbs: float  # per-GPU, one direction, for gradient/parameter collectives
    vendor: str = "nvidia"
    form: str = "datacenter"  # "datacenter" or "consumer" (GeForce: fp32-accumulate rate)
    # Fraction of the datasheet peak that large bf16 GEMMs reach (cuBLAS/hipBLASLt, public GEMM sweeps):
    # Hopper/Blackwell and the power-capped L4/L40S/T4 sit well below their boost-clock datasheet figure.
    gemm_efficiency: float = 0.85


def _g(name: str, mem_mib: int, tflops: float, bw: float, bf16: bool, ic: str, link: float, **kw: object) -> GPU:
    return GPU(name, round(mem_mib / 1024, 2), tflops, bw, bf16, ic, link, **kw)  # type: ignore[arg-type]


GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        _g("T4", 15360, 65.0, 320, False, "pcie3", 12, gemm_efficiency=0.6),
        _g("V100", 16384, 125.0, 900, False, "nvlink", 150),
        _g("V100-32GB", 32768, 125.0, 900, False, "nvlink", 150),
        _g("A10G", 23028, 70.0, 600, True, "pcie4", 24),
        _g("L4", 23034, 121.0, 300, True, "pcie4", 24, gemm_efficiency=0.6),
        _g("L40S", 46068, 362.0, 864, True, "pcie4", 24, gemm_efficiency=0.7),
        _g("A100", 40960, 312.0, 1555, True, "nvlink", 300, gemm_efficiency=0.88),
        _g("A100-80GB", 81920, 312.0, 2039, True, "nvlink", 300, gemm_efficiency=0.88),
        _g("H100", 81559, 989.0, 3350, True, "nvlink", 450, gemm_efficiency=0.72),
        _g("H200", 143771, 989.0, 4800, True, "nvlink", 450, gemm_efficiency=0.74),
        _g("B200", 183359, 2250.0, 8000, True, "nvlink", 900, gemm_efficiency=0.7),
        _g("RTX3090", 24576, 71.0, 936, True, "pcie4", 8, form="consumer", gemm_efficiency=0.9),
        _g("RTX4090", 24564, 165.2, 1008, True, "pcie4", 8, form="consumer", gemm_efficiency=0.9),
        _g("RTXA5000", 24564, 111.1, 768, True, "pcie4", 24),
        _g("RTXA6000", 49140, 154.8, 768, True, "pcie4", 24),
        _g("RTX6000-Ada", 49140, 364.2, 960, True, "pcie4", 24, gemm_efficiency=0.7),
        _g("MI300X", 196592, 1307.4, 5300, True, "infinity-fabric", 300, vendor="amd", gemm_efficiency=0.55),
    )
}

def lookup_gpu(name: str) -> str | None:
    """The table's name for a user's, catalog's or driver's GPU name, or None when the planner has no figures
    for it. Spellings are resolved by pricing's alias table (one table for the whole project)."""
    hit = _any_gpu_name(name)
    return hit if hit in GPUS else None


def canonical_gpu(name: str, field: str = "gpu") -> str:
    """Canonical SkyPilot-style name for a user's GPU name (case-insensitive, common aliases)."""
    hit = lookup_gpu(name)
    if hit is None:
        import difflib

        close = difflib.get_close_matches(name.strip().upper(), [g.upper() for g in GPUS], n=3, cutoff=0.5)
        close = [g for g in GPUS if g.upper() in close]
        fix = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(GPUS)}"
        raise SpecError(field, f"unknown GPU {name!r}", fix)
    return hit


def get_gpu(name: str, field: str = "gpu") -> GPU:
    return GPUS[canonical_gpu(name, field)]


def gpu_from_device_name(device_name: str, memory_gib: float | None = None) -> str | None:
    """The table's name for a CUDA/ROCm device name ("NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-32GB"), using
    the memory size to tell A100 40/80 GB and V100 16/32 GB apart when the name leaves it open; None when the
    device is not in the table."""
    gpu = lookup_gpu(device_name)
    name = device_name.upper()
    if gpu == "A100" and ("80G" in name or (memory_gib or 0) > 45):
        return "A100-80GB"
    if gpu == "V100" and ("32G" in name or (memory_gib or 0) > 20):
        return "V100-32GB"
    return gpu
