"""Result types of a plan: what `gpuplan plan --format json` prints, what reports and launch read.

Plain dataclasses; `to_dict()` gives the JSON shape. Key names here are a contract (users' scripts and
checks read them): extend, never rename.

Units: memory in GiB (2**30 bytes, as torch.cuda.max_memory_allocated()/2**30), throughput in tokens/s,
time in hours, money in USD.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BREAKDOWN_KEYS = ("weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead")


@dataclass
class MemoryEstimate:
    """Per-GPU memory. `breakdown_gib` sums to `peak_allocated_gib` (overhead includes the CUDA context)."""

    peak_allocated_gib: float
    peak_reserved_gib: float
    capacity_gib: float  # what the GPU offers (total memory as the driver reports it)
    breakdown_gib: dict[str, float]  # keys: BREAKDOWN_KEYS
    headroom_gib: float = 0.0  # capacity - peak_reserved - CUDA context (negative: does not fit)
    # the step's moment whose live bytes are largest: loss_backward | layer_recompute | layer_backward |
    # backward_end | optimizer_step (planner/estimator/memory.py)
    peak_moment: str = ""
    # [low, high] of peak_reserved_gib from the estimator's measured (leave-one-source-out) error
    band_gib: list[float] | None = None
    moments_gib: dict[str, float] | None = None  # allocated GiB at each moment


@dataclass
class ThroughputEstimate:
    tokens_per_s: float  # all GPUs together
    tokens_per_s_per_gpu: float
    mfu: float  # model FLOPs utilisation (model FLOPs / (time * peak dense 16-bit FLOP/s))
    step_time_s: float  # one optimizer step (micro batch x grad_accum x data-parallel GPUs)
    tokens_per_step: int
    flops_per_token: float  # model FLOPs (6N/4N + attention), excluding recompute
    hardware_flops_per_token: float  # including recompute and dequantization work
    scaling_efficiency: float  # multi-GPU efficiency applied (1.0 on one GPU)


@dataclass
class TimeEstimate:
    total_tokens: int
    steps: int
    hours: float


@dataclass
class Limits:
    """Largest settings that fit at this GPU type and count (None: not even the smallest fits)."""

    max_batch_size: int | None
    max_seq_len: int | None
    min_gpus: int | None  # fewest GPUs of this type that fit the job as given (None: none up to 64)


@dataclass
class Suggestion:
    """A concrete change that makes the job fit (or fit better), with what it costs in speed."""

    change: str  # human sentence, e.g. "turn on gradient checkpointing"
    overrides: dict[str, Any]  # job spec fields to change, e.g. {"gradient_checkpointing": True}
    peak_reserved_gib: float
    fits: bool | str
    tokens_per_s: float
    speed_ratio: float  # tokens/s after / tokens/s before (or vs. the job as given at this GPU)


@dataclass
class GpuPlan:
    """The job at one GPU type and count."""

    gpu: str
    gpus: int  # total GPUs (gpus per node x nodes)
    nodes: int
    # True: fits with the band's high end; "tight": the card's capacity is inside the band; False: even the
    # low end does not fit. JSON consumers: "tight" is truthy -- test `fits is True` for "fits with margin".
    fits: bool | str
    memory: MemoryEstimate
    throughput: ThroughputEstimate
    time: TimeEstimate | None
    limits: Limits
    suggestions: list[Suggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    estimator: dict[str, Any] = field(default_factory=dict)  # {"kind": "analytic", "stack": ...}
    calibration: dict[str, Any] | None = None  # the user calibration applied, when one applies


@dataclass
class Option:
    """One way to run the job: a cloud offer (on-demand or spot) or a local profile."""

    target: str  # "cloud" | "local"
    provider: str  # aws, gcp, azure, lambda, runpod, local
    instance_type: str  # cloud instance type, or the local profile name
    region: str | None
    gpu: str
    gpus: int  # total GPUs used (gpu_count per instance x nodes)
    spot: bool
    usd_per_hour: float  # for all instances together
    hours: float | None  # training hours (incl. expected spot preemption overhead); see time_to_result_hours
    cost_usd: float | None
    fits: bool
    zone: str | None = None
    nodes: int = 1
    usd_per_gpu_hour: float = 0.0
    tokens_per_s: float = 0.0
    usd_per_million_tokens: float | None = None
    pareto: bool = False  # on the cost/time Pareto front
    rank_cost: int | None = None
    rank_time: int | None = None
    overhead_factor: float = 1.0  # spot preemption overhead multiplier applied to hours
    source: str = ""
    as_of: str = ""
    notes: list[str] = field(default_factory=list)
    # the decision (planner.decide.compare, planner.decide): start-up, price confidence, the tuned configuration
    startup_hours: float | None = None  # provisioning, setup, downloads, upload (+ spot restarts)
    time_to_result_hours: float | None = None  # hours (training, incl. spot overhead) + startup_hours
    cost_with_startup_usd: float | None = None  # usd_per_hour x billed(time_to_result_hours)
    price_flag: str = "normal"  # "normal" | "outlier" | "stale" (pricing.confidence)
    price_note: str = ""  # why the price is flagged
    config: dict[str, Any] = field(default_factory=dict)  # tuned job-spec fields this option runs with
    changed: list[str] = field(default_factory=list)  # what the tuning changed from the job as written
    global_batch_tokens: int | None = None  # tokens per optimizer step (the same on every option)
    startup: dict[str, float] = field(default_factory=dict)  # startup_hours by part
    peak_reserved_gib: float | None = None  # per GPU, in the tuned configuration
    keeps_global_batch: bool = True  # False: more GPUs than the job's global batch allows (it grows here)


_PLAIN = (str, int, float, bool, type(None))


def to_dict(obj: Any) -> Any:
    """Dataclass -> JSON-ready dict, recursively; floats are left as they are.

    (Hand-rolled rather than dataclasses.asdict: a plan converts ~1000 options, and asdict's deep copies
    cost a measurable share of the CLI's latency budget.)
    """
    if isinstance(obj, _PLAIN):
        return obj
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return {k: (v if isinstance(v, _PLAIN) else to_dict(v)) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: (v if isinstance(v, _PLAIN) else to_dict(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [v if isinstance(v, _PLAIN) else to_dict(v) for v in obj]
    return obj
