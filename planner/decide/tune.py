"""The same training on every option, run in the fastest way each GPU type and count allows.

The job's global batch -- micro batch x gradient accumulation x GPUs of the job as written, in sequences -- is
the contract: every option trains on the same number of sequences per optimizer step, so the step count, the
learning-rate schedule and the tokens per step are identical and the options compare the same training. On N
GPUs each GPU takes global/N sequences per step; N must divide the global batch (more GPUs than sequences, or
a remainder, cannot keep it: such options take the fewest sequences per GPU that cover it, say that the
global batch grows, and are ranked only when no option keeps it).

Per (GPU type, count) the tuner then picks the fastest configuration that fits with a safety margin:
micro batch (a divisor of the per-GPU share, the rest is accumulation), gradient checkpointing on/off, the
chunked loss switched on (stacks that have it; it costs no speed), and DDP vs FSDP on more than one GPU when
the job uses one of them. Memory grows with the micro batch, so for each of the other choices the micro
batches are tried from the largest down and the first that fits is kept. Results are memoized per (GPU type, count): offers share them.

`as_written=True` keeps the user's micro batch, checkpointing, loss and parallel strategy (only the
accumulation follows the GPU count, to keep the global batch).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from planner.result import GpuPlan
from train.spec import JobSpec

CONFIG_FIELDS = ("batch_size", "grad_accum", "gradient_checkpointing", "chunked_loss", "parallel")
CHUNKED_LOSS_STACKS = ("gpuplan", "torchtune")  # stacks with a chunked cross-entropy (train/loss.py, torchtune)


@dataclass
class Tuned:
    """The job at one GPU type and count, in the configuration an option prices and launch ships."""

    plan: GpuPlan
    config: dict[str, Any]  # the job-spec fields of that configuration (CONFIG_FIELDS)
    changed: list[str] = field(default_factory=list)  # what differs from the job as written, in words
    keeps_global_batch: bool = True
    margin: bool = True  # fits with the safety margin (False: fits only inside the estimator's error band)


@dataclass(frozen=True)
class GlobalBatch:
    sequences: int
    seq_len: int
    total_tokens: int | None

    @property
    def tokens(self) -> int:
        return self.sequences * self.seq_len

    @property
    def steps(self) -> int | None:
        return None if self.total_tokens is None else max(1, math.ceil(self.total_tokens / self.tokens))

    def to_dict(self) -> dict[str, Any]:
        return {"sequences": self.sequences, "tokens": self.tokens, "steps": self.steps}


def global_batch(spec: JobSpec) -> GlobalBatch:
    return GlobalBatch(spec.batch_size * spec.grad_accum * spec.gpus * spec.nodes, spec.seq_len, spec.total_tokens())


def with_global_batch(spec: JobSpec, n: int) -> tuple[JobSpec, str]:
    """The job as written on n GPUs with the accumulation that keeps its global batch, and a note saying so
    ("" when nothing changes); unchanged, with a note, when the micro batch x n does not divide it."""
    g = global_batch(spec).sequences
    if spec.batch_size * n * spec.grad_accum == g:
        return spec, ""
    if g % (spec.batch_size * n):
        return spec, (f"{n} GPUs x micro batch {spec.batch_size} cannot keep the job's global batch of {g} sequences: "
                      f"shown with accumulation {spec.grad_accum} ({spec.batch_size * n * spec.grad_accum} sequences "
                      "per step)")
    accum = g // (spec.batch_size * n)
    return dataclasses.replace(spec, grad_accum=accum), (f"accumulation {accum} on {n} GPUs keeps the job's global "
                                                         f"batch of {g} sequences")


def divisors_desc(n: int) -> list[int]:
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]), reverse=True)


def fits_with_margin(plan: GpuPlan, margin_fraction: float) -> bool:
    """`fits is True` (outside the estimator's error band, where the estimator reports one); with a plain
    boolean estimator, also `margin_fraction` of the peak left free."""
    return _margin_ok(plan.fits, plan.memory, margin_fraction)


def _margin_ok(fits: Any, memory: Any, margin_fraction: float) -> bool:
    if fits is not True:
        return False
    if hasattr(memory, "band_gib"):  # the estimator marks "tight" itself
        return True
    return memory.headroom_gib >= margin_fraction * memory.peak_reserved_gib


def _describe_changes(spec: JobSpec, config: dict[str, Any]) -> list[str]:
    out = []
    if config["batch_size"] != spec.batch_size or config["grad_accum"] != spec.grad_accum:
        out.append(f"micro batch {spec.batch_size} x accum {spec.grad_accum} -> "
                   f"{config['batch_size']} x {config['grad_accum']}")
    if config["gradient_checkpointing"] != spec.gradient_checkpointing:
        out.append("checkpointing " + ("on" if config["gradient_checkpointing"] else "off"))
    if config["chunked_loss"] != spec.chunked_loss:
        out.append("chunked loss " + ("on" if config["chunked_loss"] else "off"))
    if config["parallel"] != spec.parallel:
        out.append(f"{spec.parallel} -> {config['parallel']}")
    return out


class Tuner:
    """`tuner(gpu, n) -> Tuned`, memoized. `evaluate(spec, gpu, n) -> GpuPlan` is the planner's estimator."""

    def __init__(self, spec: JobSpec, evaluate: Callable[[JobSpec, str, int], GpuPlan], *,
                 as_written: bool = False, margin_fraction: float = 0.0,
                 measure: Callable[[JobSpec, str, int], tuple[Any, Any, float | None]] | None = None) -> None:
        """`measure(spec, gpu, n) -> (fits, MemoryEstimate, tokens/s or None when it does not fit)`: the memory
        and speed models alone, cheaper than `evaluate`, which then runs once for the configuration picked."""
        self.spec = spec
        self.evaluate = evaluate
        self.measure = measure
        self.as_written = as_written
        self.margin_fraction = margin_fraction
        self.batch = global_batch(spec)
        self._memo: dict[tuple[str, int], Tuned] = {}
        self._plans: dict[tuple[Any, ...], GpuPlan] = {}
        self._variants: dict[tuple[Any, ...], JobSpec] = {}

    def __call__(self, gpu: str, n: int) -> Tuned:
        key = (gpu, n)
        if key not in self._memo:
            self._memo[key] = self._tune(gpu, n)
        return self._memo[key]

    def plan(self, gpu: str, n: int) -> GpuPlan:
        return self(gpu, n).plan

    def _eval(self, spec: JobSpec, gpu: str, n: int) -> GpuPlan:
        key = (gpu, n, spec.batch_size, spec.grad_accum, spec.gradient_checkpointing, spec.chunked_loss, spec.parallel)
        if key not in self._plans:
            self._plans[key] = self.evaluate(spec, gpu, n)
        return self._plans[key]

    def _variant(self, batch_size: int, grad_accum: int, gradient_checkpointing: bool, chunked_loss: bool,
                 parallel: str) -> JobSpec:
        """The job with these configuration fields. The same candidates recur for every GPU type of a count
        (the 8B example: 198 candidates, 28 distinct), and each dataclasses.replace copies the whole JobSpec:
        each is built once. Candidates never leave the tuner (options carry `config` dicts), so sharing them
        is safe."""
        key = (batch_size, grad_accum, gradient_checkpointing, chunked_loss, parallel)
        if key not in self._variants:
            self._variants[key] = dataclasses.replace(self.spec, batch_size=batch_size, grad_accum=grad_accum,
                                                      gradient_checkpointing=gradient_checkpointing,
                                                      chunked_loss=chunked_loss, parallel=parallel)
        return self._variants[key]

    def _as_written(self, per_gpu: int) -> JobSpec:
        """The job as written with the largest micro batch up to its own that divides the per-GPU share."""
        spec = self.spec
        b = max(d for d in divisors_desc(per_gpu) if d <= spec.batch_size)
        return self._variant(b, per_gpu // b, spec.gradient_checkpointing, spec.chunked_loss, spec.parallel)

    def _config(self, spec: JobSpec) -> dict[str, Any]:
        return {f: getattr(spec, f) for f in CONFIG_FIELDS}

    def _tune(self, gpu: str, n: int) -> Tuned:
        spec, g = self.spec, self.batch.sequences
        keeps = n <= g and g % n == 0
        # Cannot keep it: the fewest sequences per GPU that cover the global batch (it grows to per_gpu x n, and
        # the option says so); the configuration is still tuned so the option can be chosen explicitly.
        per_gpu = g // n if keeps else max(1, -(-g // n))
        if self.as_written:
            s = self._as_written(per_gpu)
            plan = self._eval(s, gpu, n)
            cfg = self._config(s)
            return Tuned(plan, cfg, _describe_changes(spec, cfg), keeps, fits_with_margin(plan, self.margin_fraction))

        parallels = [spec.parallel]
        if n > 1 and spec.parallel in ("ddp", "fsdp"):
            parallels = [spec.parallel, "fsdp" if spec.parallel == "ddp" else "ddp"]
        # The chunked loss only saves memory (the speed model charges nothing for it), so it is switched on
        # where the stack has it and never switched off.
        chunked = [spec.chunked_loss]
        if spec.stack in CHUNKED_LOSS_STACKS and not spec.chunked_loss:
            chunked.append(True)
        # Checkpointing off first: when it fits at the largest micro batch, recomputing cannot be faster.
        ckpts = [False, True]
        best: tuple[tuple[float, int], JobSpec, GpuPlan | None] | None = None
        tight: tuple[tuple[float, int], JobSpec, GpuPlan | None] | None = None
        def consider(s: JobSpec) -> bool:
            """Size one configuration; True when it fits with the margin."""
            nonlocal best, tight
            plan = None
            if self.measure is not None:
                fits, mem, tps = self.measure(s, gpu, n)
                if not fits or tps is None:
                    return False
                ok = _margin_ok(fits, mem, self.margin_fraction)
            else:
                plan = self._eval(s, gpu, n)
                if not plan.fits:
                    return False
                tps, ok = plan.throughput.tokens_per_s, fits_with_margin(plan, self.margin_fraction)
            score = (tps, -len(_describe_changes(spec, self._config(s))))
            if ok:
                if best is None or score > best[0]:
                    best = (score, s, plan)
                return True
            if tight is None or score > tight[0]:
                tight = (score, s, plan)
            return False

        top: JobSpec | None = None  # the largest micro batch without recompute, once one strategy runs it
        for par in parallels:
            if top is not None:
                # The other strategy holds the top configuration too, or not at all (it is the same shape with
                # its memory split differently): only its top configuration can compete on speed.
                consider(self._variant(top.batch_size, top.grad_accum, top.gradient_checkpointing,
                                       top.chunked_loss, par))
                continue
            for ck in ckpts:
                for cl in chunked:
                    for b in divisors_desc(per_gpu):
                        s = self._variant(b, per_gpu // b, ck, cl, par)
                        if consider(s):
                            if b == per_gpu and not ck:
                                top = s
                            break  # smaller micro batches use less memory and run no faster
                    if top is not None:
                        break  # nothing in this strategy is faster than its top configuration
                if top is not None:
                    break
        pick, margin = (best, True) if best is not None else (tight, False)
        if pick is None:  # nothing fits: report the job as written (accumulation set for the global batch)
            s = self._as_written(per_gpu)
            return Tuned(self._eval(s, gpu, n), self._config(s), [], keeps, False)
        _, s, plan = pick
        if plan is None:
            plan = self._eval(s, gpu, n)
        cfg = self._config(s)
        return Tuned(plan, cfg, _describe_changes(spec, cfg), keeps, margin)
