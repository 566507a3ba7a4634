"""The analytic-vs-simulated grid (issue 9): configurations, one comparison row each, and the summary.

Used by benchmarks/analytic_vs_simulated.py (the full grid) and tests/test_simulate_grid.py (a subset).
A configuration is a job spec plus a GPU type and a world size; the row holds the analytic model's
peak allocated memory (planner.estimator.memory.estimate_memory as it is), the simulated one, the relative error
(analytic - simulated) / simulated, and both fit calls on that GPU.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Iterator

from train.spec import JobSpec

MODELS = (
    "Qwen/Qwen2.5-0.5B", "Qwen/Qwen3-0.6B", "meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-1.5B", "google/gemma-2-2b",
    "meta-llama/Llama-3.2-3B", "microsoft/Phi-3-mini-4k-instruct", "google/gemma-3-4b-pt", "Qwen/Qwen3-4B",
    "mistralai/Mistral-7B-v0.3", "Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B",
    "google/gemma-2-9b", "google/gemma-3-12b-pt", "Qwen/Qwen2.5-14B", "microsoft/phi-4", "Qwen/Qwen2.5-32B",
    "meta-llama/Llama-3.3-70B-Instruct", "Qwen/Qwen2.5-72B",
)
SEQS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
BATCHES = (1, 2, 4, 8)
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd")
ATTENTIONS = ("sdpa", "flash", "eager")
LAYOUTS = (("ddp", 1), ("ddp", 2), ("fsdp", 2), ("fsdp", 4), ("fsdp", 8), ("zero3", 4), ("zero3", 8))
GPUS = ("L4", "A10G", "RTX4090", "A100", "A100-80GB", "H100", "H200")


@dataclass(frozen=True)
class Config:
    spec: JobSpec
    gpu: str
    world: int

    def label(self) -> str:
        s = self.spec
        return (f"{s.model.split('/')[-1]} {s.method} s{s.seq_len}x{s.batch_size} gc={int(s.gradient_checkpointing)} "
                f"{s.attention} {s.optimizer} {s.precision} {s.parallel}x{self.world} {self.gpu}")


def _config(rng: random.Random) -> Config:
    model = rng.choice(MODELS)
    method = rng.choice(("full", "lora", "qlora"))
    seq = rng.choice(SEQS)
    # keep the tokens of a micro batch <= 64k (the grid is about shapes people run, not absurd ones)
    batch = rng.choice([b for b in BATCHES if b * seq <= 65536])
    attention = rng.choice(ATTENTIONS)
    if attention == "eager" and seq > 4096:  # eager's s x s matrix: nobody runs it at long context
        attention = "sdpa"
    parallel, world = rng.choice(LAYOUTS)
    precision = "bf16" if method == "qlora" else rng.choice(("bf16", "bf16", "bf16-mixed"))
    spec = JobSpec(model=model, method=method, seq_len=seq, batch_size=batch, grad_accum=rng.choice((1, 1, 4)),
                   gradient_checkpointing=rng.random() < 0.75, optimizer=rng.choice(OPTIMIZERS),
                   precision=precision, attention=attention, parallel=parallel, gpus=world)
    return Config(spec, rng.choice(GPUS), world)


def grid(n: int = 240, seed: int = 0) -> list[Config]:
    """`n` distinct configurations drawn from the issue's ranges (deterministic for a seed)."""
    rng = random.Random(seed)
    out: dict[str, Config] = {}
    while len(out) < n:
        c = _config(rng)
        out.setdefault(c.label(), c)
    return list(out.values())


def quick_grid() -> list[Config]:
    """About ten configurations that cover the methods, a sharded layout and long context, small models first."""
    specs = [
        (JobSpec(model="Qwen/Qwen2.5-0.5B", method="qlora", seq_len=2048), "L4", 1),
        (JobSpec(model="Qwen/Qwen2.5-0.5B", method="qlora", seq_len=10240), "L4", 1),  # near the L4's limit
        (JobSpec(model="Qwen/Qwen2.5-0.5B", method="lora", seq_len=4096, precision="bf16", optimizer="adamw"), "L4", 1),
        (JobSpec(model="Qwen/Qwen2.5-0.5B", method="full", seq_len=1024, batch_size=4, precision="bf16",
                 optimizer="adamw", gradient_checkpointing=False), "A10G", 1),
        (JobSpec(model="meta-llama/Llama-3.2-1B", method="full", seq_len=2048, precision="bf16-mixed",
                 optimizer="adamw"), "A100", 1),
        (JobSpec(model="meta-llama/Llama-3.2-1B", method="lora", seq_len=8192, precision="bf16",
                 optimizer="adamw-8bit", attention="eager"), "A100", 1),
        (JobSpec(model="meta-llama/Llama-3.1-8B", method="qlora", seq_len=8192), "L4", 1),
        (JobSpec(model="meta-llama/Llama-3.1-8B", method="qlora", seq_len=16384), "A10G", 1),
        (JobSpec(model="Qwen/Qwen2.5-7B", method="lora", seq_len=4096, precision="bf16", optimizer="adamw"),
         "A100", 1),
        (JobSpec(model="meta-llama/Llama-3.1-8B", method="full", seq_len=4096, precision="bf16", optimizer="adamw",
                 parallel="fsdp", gpus=8), "H100", 8),
        (JobSpec(model="meta-llama/Llama-3.3-70B-Instruct", method="qlora", seq_len=4096, parallel="fsdp", gpus=8),
         "A100-80GB", 8),
    ]
    return [Config(s, g, w) for s, g, w in specs]


def compare(c: Config, use_cache: bool = True) -> dict[str, Any]:
    """One row: analytic vs simulated peak allocated memory, and the fit calls on the config's GPU."""
    from planner.estimator.simulate import simulate_memory
    from planner.gpus import get_gpu
    from planner.estimator.memory import estimate_memory, fits
    from planner.models import resolve_model

    gpu = get_gpu(c.gpu)
    ana = estimate_memory(resolve_model(c.spec.model), c.spec, gpu, c.world)
    t0 = time.perf_counter()
    sim = simulate_memory(c.spec, c.gpu, c.world, use_cache=use_cache)
    wall = time.perf_counter() - t0
    err = (ana.peak_allocated_gib - sim["peak_allocated_gib"]) / sim["peak_allocated_gib"]
    ana_fits = bool(fits(ana))
    return {"config": c.label(), "method": c.spec.method, "parallel": c.spec.parallel, "world": c.world,
            "gpu": c.gpu, "analytic_gib": ana.peak_allocated_gib, "simulated_gib": sim["peak_allocated_gib"],
            "simulated_reserved_gib": sim["peak_reserved_gib"], "analytic_reserved_gib": ana.peak_reserved_gib,
            "error": round(err, 4), "peak_moment": sim["peak_moment"], "analytic_fits": ana_fits,
            "simulated_fits": bool(sim["fits"]), "extrapolated": sim["estimator"]["extrapolated"],
            "cached": sim["estimator"].get("cached", False), "seconds": round(wall, 2)}


def run(configs: list[Config], use_cache: bool = True) -> Iterator[dict[str, Any]]:
    for c in configs:
        yield compare(c, use_cache)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Error distribution (|analytic - simulated| / simulated) and the wrong "fits" calls."""
    errs = [abs(r["error"]) for r in rows]
    out: dict[str, Any] = {
        "configs": len(rows),
        "mean_abs_error": round(sum(errs) / len(errs), 4) if errs else 0.0,
        "p90_abs_error": round(_pct(errs, 0.9), 4),
        "max_abs_error": round(max(errs), 4) if errs else 0.0,
        "mean_signed_error": round(sum(r["error"] for r in rows) / len(rows), 4) if rows else 0.0,
        "underestimates": sum(1 for r in rows if r["error"] < 0),
        "within_10pct": sum(1 for e in errs if e <= 0.10),
        "analytic_fits_simulated_not": sum(1 for r in rows if r["analytic_fits"] and not r["simulated_fits"]),
        "analytic_not_simulated_fits": sum(1 for r in rows if not r["analytic_fits"] and r["simulated_fits"]),
    }
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(abs(r["error"]))
        key = "sharded" if r["parallel"] in ("fsdp", "zero3") and r["world"] > 1 else "unsharded"
        by.setdefault(key, []).append(abs(r["error"]))
    out["mean_abs_error_by"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by.items())}
    fresh = [r["seconds"] for r in rows if not r["cached"]]
    if fresh:
        out["seconds_per_simulation"] = {"mean": round(sum(fresh) / len(fresh), 2), "max": round(max(fresh), 2)}
    return out
