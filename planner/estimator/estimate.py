"""A job at one GPU type and count: memory, speed, time, limits, and what to change when it doesn't fit."""
from __future__ import annotations

import dataclasses
from typing import Any

from planner.gpus import GPU, get_gpu
from planner.estimator.memory import conservative_headroom_of, estimate_memory, fits
from planner.models import ModelArch
from planner.result import GpuPlan, Limits, Suggestion, TimeEstimate
from planner.estimator.throughput import estimate_throughput, steps_and_hours
from train.spec import JobSpec

GPU_COUNTS = (1, 2, 4, 8)  # evaluated for every GPU type when no --gpu is given
MAX_GPUS = 64
GPUS_PER_NODE = 8  # the largest single cloud instance of most GPU types


def layout(spec: JobSpec, gpus: int | None = None) -> tuple[int, int]:
    """(total GPUs, nodes): the spec's gpus x nodes, or `gpus` spread over nodes of up to 8."""
    if gpus is None:
        return spec.gpus * spec.nodes, spec.nodes
    nodes = max(1, -(-gpus // GPUS_PER_NODE))
    return gpus, nodes


def _with(spec: JobSpec, **changes: Any) -> JobSpec:
    return dataclasses.replace(spec, **changes)


def _fits(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, cal: Any = None) -> bool:
    """Fits with margin: the high end of the estimator's band fits the card."""
    factor = cal.memory_factor_for(gpu.name) if cal is not None else 1.0
    return conservative_headroom_of(arch, spec, gpu, world, memory_factor=factor) >= 0


def _memory(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, seq_len: int | None = None,
            batch: int | None = None, cal: Any = None):
    factor = cal.memory_factor_for(gpu.name) if cal is not None else 1.0
    return estimate_memory(arch, spec, gpu, world, seq_len, batch, memory_factor=factor)


def _largest(headroom: Any, lo: int, hi: int) -> int | None:
    """Largest x in [lo, hi] with headroom(x) >= 0, for headroom decreasing in x; None if not even lo.

    Memory is affine in the tokens of a micro-batch (plus an s^2 term for eager attention), so a secant
    through two points lands on or next to the answer; a bisection finishes whatever the secant leaves.
    """
    h_lo = headroom(lo)
    if h_lo < 0:
        return None
    if lo == hi:
        return lo
    x2 = min(hi, lo + max(1, lo))
    h2 = headroom(x2)
    if h2 >= 0:
        if x2 == hi:
            return hi
        slope = (h_lo - h2) / (x2 - lo)
        ok, bad = x2, hi + 1
        if slope > 0:
            guess = min(hi, x2 + int(h2 / slope))
            if guess > ok:
                if headroom(guess) >= 0:
                    ok = guess
                else:
                    bad = guess
            if ok < hi and ok + 1 < bad:
                if headroom(ok + 1) < 0:
                    return ok
        if bad == hi + 1 and headroom(hi) >= 0:
            return hi
        bad = min(bad, hi)
    else:
        ok, bad = lo, x2
    while bad - ok > 1:  # headroom(ok) >= 0 > headroom(bad)
        mid = (ok + bad) // 2
        if headroom(mid) >= 0:
            ok = mid
        else:
            bad = mid
    return ok


def limits(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, cal: Any = None) -> Limits:
    """Largest micro batch and sequence length whose band's HIGH end fits (the conservative end)."""
    factor = cal.memory_factor_for(gpu.name) if cal is not None else 1.0

    def head_b(b: int) -> float:
        return conservative_headroom_of(arch, spec, gpu, world, batch=b, memory_factor=factor)

    def head_s(k: int) -> float:  # sequence lengths in steps of 64 tokens
        return conservative_headroom_of(arch, spec, gpu, world, seq_len=64 * k, memory_factor=factor)

    max_b = _largest(head_b, 1, 1024)
    max_ctx = max(arch.max_position_embeddings, spec.seq_len)
    steps = _largest(head_s, 1, max(1, max_ctx // 64))
    return Limits(max_batch_size=max_b, max_seq_len=None if steps is None else 64 * steps,
                  min_gpus=min_gpus(arch, spec, gpu, cal))


def min_gpus(arch: ModelArch, spec: JobSpec, gpu: GPU, cal: Any = None) -> int | None:
    """Fewest GPUs of this type (1, 2, 4, 8, 16 ...) that fit the job as given, with margin (band's high end)."""
    n = 1
    while n <= MAX_GPUS:
        if _fits(arch, spec, gpu, n, cal):
            return n
        if spec.parallel == "ddp":  # replicas don't shrink with more GPUs
            return None
        n *= 2
    return None


def evaluate(arch: ModelArch, spec: JobSpec, gpu_name: str, gpus: int | None = None,
             with_suggestions: bool = True, with_limits: bool = True, *, calibration: Any = None) -> GpuPlan:
    """The job on `gpus` GPUs of type `gpu_name` (default: the spec's gpus x nodes).

    `calibration`: a planner.estimator.calibration.UserCalibration (from `gpuplan calibrate`) whose memory
    correction and per-GPU speed efficiency apply; None: the analytic model as it is.
    """
    gpu = get_gpu(gpu_name)
    world, nodes = layout(spec, gpus)
    cal = calibration
    mem = _memory(arch, spec, gpu, world, cal=cal)
    tput = estimate_throughput(arch, spec, gpu, world, nodes)
    if cal is not None:
        tput = cal.apply_speed(gpu.name, tput)
    sh = steps_and_hours(spec, tput)
    time = None if sh is None else TimeEstimate(total_tokens=spec.total_tokens() or 0, steps=sh[0],
                                                 hours=round(sh[1], 4))
    ok = fits(mem)
    notes: list[str] = []
    if spec.precision in ("bf16", "bf16-mixed") and not gpu.bf16:
        notes.append(f"{gpu.name} has no bf16: the trainer computes in fp16 here (precision fp16-mixed for full "
                     "fine-tuning, which pure fp16 makes unstable)")
    if spec.parallel == "ddp" and world > 1 and ok is not True:
        notes.append("DDP keeps a full replica on every GPU: more GPUs do not reduce memory; try fsdp")
    if spec.optimizer == "paged-adamw-8bit":
        notes.append("paged 8-bit optimizer states live in CUDA unified memory and are not counted in the peak")
    if ok == "tight":
        lo, hi = mem.band_gib or [mem.peak_reserved_gib] * 2
        notes.append(f"tight: {gpu.memory_gib:.0f} GiB is inside the estimate's band ({lo:.1f}-{hi:.1f} GiB "
                     "reserved, plus the CUDA context); it may run out of memory")
    plan = GpuPlan(gpu=gpu.name, gpus=world, nodes=nodes, fits=ok, memory=mem, throughput=tput, time=time,
                   limits=limits(arch, spec, gpu, world, cal) if with_limits or with_suggestions else Limits(None, None, None),
                   notes=notes, estimator={"kind": "analytic", "stack": spec.stack},
                   calibration=cal.summary_for(gpu.name) if cal is not None else None)
    if with_suggestions:
        plan.suggestions = suggestions(arch, spec, gpu, world, plan, cal=cal)
    return plan


# ------------------------------------------------------------------------------------------------------
# suggestions
# ------------------------------------------------------------------------------------------------------
def _candidates(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, plan: GpuPlan) -> list[tuple[str, dict]]:
    """Single changes worth trying, as (sentence, spec overrides)."""
    c: list[tuple[str, dict]] = []
    if not spec.gradient_checkpointing:
        c.append(("turn on gradient checkpointing", {"gradient_checkpointing": True}))
    if spec.optimizer == "adamw":
        c.append(("use the 8-bit AdamW optimizer (bitsandbytes)", {"optimizer": "adamw-8bit"}))
    if spec.optimizer in ("adamw", "adamw-8bit"):
        c.append(("use the paged 8-bit AdamW optimizer", {"optimizer": "paged-adamw-8bit"}))
    if spec.precision in ("bf16-mixed", "fp16-mixed", "fp32") and gpu.bf16:
        c.append(("train in pure bf16 (no fp32 master weights)", {"precision": "bf16"}))
    if spec.method == "full":
        c.append(("fine-tune with LoRA instead of all weights", {"method": "lora"}))
    if spec.method in ("full", "lora"):
        over: dict[str, Any] = {"method": "qlora"}
        if spec.precision == "fp32" or (spec.precision != "fp16-mixed" and not gpu.bf16):
            over["precision"] = "bf16" if gpu.bf16 else "fp16-mixed"
        c.append(("use QLoRA (4-bit NF4 base weights)", over))
    if spec.batch_size > 1:
        fit_b = plan.limits.max_batch_size
        b = fit_b if fit_b and fit_b < spec.batch_size else max(1, spec.batch_size // 2)
        ga = max(1, -(-spec.batch_size * spec.grad_accum // b))
        c.append((f"micro batch {b} with gradient accumulation {ga} (same global batch)",
                  {"batch_size": b, "grad_accum": ga}))
    if spec.attention == "eager":
        c.append(("use SDPA attention (no s x s score matrix)", {"attention": "sdpa"}))
    if world > 1 and spec.parallel == "ddp":
        c.append((f"shard with FSDP over the {world} GPUs", {"parallel": "fsdp"}))
    if spec.parallel != "fsdp-offload":
        c.append(("offload parameters and optimizer to CPU (FSDP offload)", {"parallel": "fsdp-offload"}))
    return c


def suggestions(arch: ModelArch, spec: JobSpec, gpu: GPU, world: int, plan: GpuPlan, limit: int = 6,
                cal: Any = None) -> list[Suggestion]:
    """Changes that make the job fit (or, when it fits, that make it faster), ranked by speed."""
    base_tps = plan.throughput.tokens_per_s
    out: list[Suggestion] = []

    def score(sentence: str, over: dict, on: int = world) -> Suggestion:
        s2 = _with(spec, **over)
        mem = _memory(arch, s2, gpu, on, cal=cal)
        tput = estimate_throughput(arch, s2, gpu, on, layout(s2, on)[1])
        if cal is not None:
            tput = cal.apply_speed(gpu.name, tput)
        return Suggestion(change=sentence, overrides=over, peak_reserved_gib=mem.peak_reserved_gib,
                          fits=fits(mem), tokens_per_s=tput.tokens_per_s,
                          speed_ratio=round(tput.tokens_per_s / base_tps, 3) if base_tps else 0.0)

    if plan.fits is True:
        # Faster ways that still fit: bigger micro-batches, no recomputation.
        if plan.limits.max_batch_size and plan.limits.max_batch_size > spec.batch_size:
            b = plan.limits.max_batch_size
            ga = max(1, spec.batch_size * spec.grad_accum // b)
            out.append(score(f"raise the micro batch to {b} (grad accumulation {ga})", {"batch_size": b, "grad_accum": ga}))
        if spec.gradient_checkpointing:
            out.append(score("turn off gradient checkpointing (no recompute)", {"gradient_checkpointing": False}))
        return sorted([s for s in out if s.fits is True and s.speed_ratio > 1.0], key=lambda s: -s.speed_ratio)[:limit]

    cands = _candidates(arch, spec, gpu, world, plan)
    for sentence, over in cands:
        out.append(score(sentence, over))
    # More GPUs with sharding.
    sharded = spec if spec.parallel != "ddp" else _with(spec, parallel="fsdp")
    need = min_gpus(arch, sharded, gpu, cal)
    if need is not None and need > world:
        label = "fsdp" if spec.parallel == "ddp" else spec.parallel
        out.append(score(f"shard with {label} over {need} x {gpu.name}", {"parallel": sharded.parallel, "gpus": need}, on=need))
    # If no single change fits, stack the cheap ones greedily (in order) until it fits.
    if not any(s.fits is True for s in out):
        stacked: dict[str, Any] = {}
        sentences: list[str] = []
        for sentence, over in cands:
            stacked.update(over)
            sentences.append(sentence)
            trial = score("; ".join(sentences), dict(stacked))
            if trial.fits is True:
                out.append(trial)
                break
    fitting = sorted((s for s in out if s.fits is True), key=lambda s: -s.speed_ratio)
    if fitting:
        return fitting[:limit]
    # Nothing fits here: show the changes that save the most memory.
    return sorted(out, key=lambda s: s.peak_reserved_gib)[: min(limit, 3)]
