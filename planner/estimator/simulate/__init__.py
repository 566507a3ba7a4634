"""Simulated peak memory: one real training step of the bundled trainer on meta tensors.

`simulate_memory(spec, gpu, world)` returns the memory section of a plan (same keys as the analytic
estimate: peak_allocated_gib, peak_reserved_gib, capacity_gib, breakdown_gib, headroom_gib) plus
`peak_moment`, `peak_op`, `fragmentation`, `moments_gib` and `estimator` {"kind": "simulated", "stack":
"gpuplan", "extrapolated": bool, ...}.

How: build.py builds the model with the trainer's own load_model (weights swapped for meta tensors),
step.py runs the trainer's step under a storage tracker (tracker.py, 512-byte CUDA block rounding),
kernels.py supplies what meta cannot (flash kernel interface, autocast, kernel workspaces), moments.py
turns the trace into per-phase peaks and replays it through the caching-allocator model (allocator.py) for
reserved memory. Models deeper than 4 layers are simulated at 2 and 4 layers and every phase's moment is
extrapolated linearly in the layer count (exact for identical layers; `extrapolated: true`). Data
parallelism (DDP buckets, FSDP/ZeRO-3 sharding) is applied per phase by mechanism (sharding.py).
Results are cached by configuration (cache.py).

torch, transformers, peft and bitsandbytes are imported only when a simulation runs.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from train.spec import JobSpec, SpecError

SIM_VERSION = 3  # bump when the simulation changes what it counts (invalidates the cache)
EXTRAPOLATE_FROM = (2, 4)  # layer counts simulated for deeper models
INSTALL_HINT = "install it with: pip install 'gpuplan[train]'"


def require_torch() -> None:
    """SpecError (one line, exit 2 in the CLI) when the simulation's packages are missing."""
    try:
        import bitsandbytes  # noqa: F401
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise SpecError("simulate", f"needs torch, transformers, peft and bitsandbytes ({exc.name} is missing)",
                        INSTALL_HINT) from None


def _sm90(gpu_name: str | None) -> bool:
    return bool(gpu_name) and gpu_name.upper().startswith(("H100", "H200", "GH200", "B200", "B100", "GB200"))


def _simulate_depth(spec: JobSpec, values: dict[str, Any], layers: int | None, sm90: bool, world: int):
    from planner.estimator.simulate.build import build_model
    from planner.estimator.simulate.moments import analyse
    from planner.estimator.simulate.step import run_step

    fsdp = spec.parallel in ("fsdp", "fsdp-offload") and world > 1
    # torch.compile is not run on meta: the eager step is simulated (compile only lowers memory)
    sim_spec = dataclasses.replace(spec, compile=False)
    _lm, loss_model, precision, notes = build_model(sim_spec, values, layers, fsdp)
    rec = run_step(sim_spec, loss_model, precision, sm90=sm90)
    mem = analyse(rec.tracker.trace.events, rec.categories, rec.excluded)
    info = (rec.layer_weight_bytes, rec.layer_trainable_bytes, rec.root_weight_bytes, rec.trainable_bytes)
    return mem, info, notes


def simulate_memory(spec: JobSpec, gpu_name: str | None = None, world: int | None = None, *,
                    full_depth: bool = False, use_cache: bool = True) -> dict[str, Any]:
    """Per-GPU peak memory of `spec` on `world` GPUs (default: the spec's) of type `gpu_name`, simulated."""
    require_torch()
    from planner.estimator.simulate import cache
    from planner.estimator.simulate.build import hf_config_values
    from planner.estimator.simulate.moments import extrapolate
    from planner.estimator.simulate.sharding import ModelBytes, per_rank
    from planner.gpus import get_gpu
    from planner.estimator.memory import CAL

    world = world or spec.world_size
    gpu = get_gpu(gpu_name) if gpu_name else None
    values = hf_config_values(spec.model)
    total_layers = int(values.get("num_hidden_layers") or values.get("n_layer") or 0)
    sm90 = _sm90(gpu.name if gpu else None)
    key = cache.key(spec, values, world, sm90, full_depth, SIM_VERSION)
    if use_cache:
        hit = cache.load(key)
        if hit is not None:
            return _finish(hit, gpu, CAL.cuda_context_gib, cached=True)
    t0 = time.perf_counter()
    la, lb = EXTRAPOLATE_FROM
    notes: list[str] = []
    try:
        if full_depth or total_layers <= lb:
            mem, info, notes = _simulate_depth(spec, values, None, sm90, world)
            layer_w, layer_t, root_w, trainable = info
            simulated: list[int] = [total_layers]
            extrapolated = False
        else:
            mem_a, info_a, notes = _simulate_depth(spec, values, la, sm90, world)
            mem_b, info_b, _ = _simulate_depth(spec, values, lb, sm90, world)
            mem = extrapolate(mem_a, la, mem_b, lb, total_layers)
            layer_w, layer_t, root_w = info_b[0], info_b[1], info_b[2]
            trainable = info_b[3] + (info_b[3] - info_a[3]) * (total_layers - lb) / (lb - la)
            simulated = [la, lb]
            extrapolated = True
    except SpecError:
        raise
    except Exception as exc:  # an architecture the meta step cannot run (e.g. data-dependent MoE routing)
        first = (str(exc).splitlines() or [""])[0][:160]
        raise SpecError("simulate", f"cannot simulate {spec.model} ({type(exc).__name__}: {first})",
                        "plan it without --simulate (the analytic model)") from None
    if spec.stack != "gpuplan":
        notes.append(f"the job names stack {spec.stack!r}; the simulation runs the bundled trainer (gpuplan)")
    model_bytes = ModelBytes(layer_weights=layer_w, layer_trainable=layer_t, root_weights=root_w,
                             trainable=trainable)
    mem, sharding_note = per_rank(mem, model_bytes, spec.parallel, world)
    gib = float(2**30)
    estimator: dict[str, Any] = {"kind": "simulated", "stack": "gpuplan", "extrapolated": extrapolated,
                                 "layers_simulated": simulated, "layers": total_layers, "world": world}
    if extrapolated:
        estimator["extrapolation"] = (f"simulated at {la} and {lb} decoder layers; each phase's peak extrapolated "
                                      f"linearly to {total_layers} layers")
    if sharding_note:
        estimator["sharding"] = sharding_note
    # how peak_reserved_gib was obtained: a replay of the allocation trace through the caching-allocator model
    # only for an unsharded, simulated-at-full-depth step; otherwise the replayed reserved/allocated ratio of the
    # simulated step(s) applied to the (extrapolated or per-rank) allocated peak (the per-rank trace is not
    # replayed: a sharded job's fragmentation may differ)
    if sharding_note:
        estimator["reserved"] = ("estimated: the single-GPU step's replayed reserved/allocated ratio applied to "
                                 "the per-rank allocated peak (per-rank trace not replayed)")
    elif extrapolated:
        estimator["reserved"] = ("the larger reserved/allocated ratio of the allocator replays at the simulated "
                                 "depths applied to the extrapolated allocated peak")
    else:
        estimator["reserved"] = "replayed: the allocation trace through the CUDA caching-allocator model"
    doc = {
        "peak_allocated_gib": round(mem.peak.allocated / gib, 3),
        "peak_reserved_gib": round(max(mem.reserved, mem.peak.allocated) / gib, 3),
        "breakdown_gib": {k: round(v / gib, 3) for k, v in mem.peak.breakdown.items()},
        "peak_moment": mem.peak.phase,
        "peak_op": mem.peak.op,
        "fragmentation": round(1 - mem.peak.allocated / mem.reserved, 4) if mem.reserved > 0 else 0.0,
        "moments_gib": {p: round(m.allocated / gib, 3) for p, m in sorted(mem.moments.items(),
                                                                           key=lambda kv: -kv[1].allocated)},
        "estimator": estimator,
        "notes": notes,
        "simulation_seconds": round(time.perf_counter() - t0, 2),
    }
    if use_cache:
        cache.store(key, doc)
    return _finish(doc, gpu, CAL.cuda_context_gib, cached=False)


def _finish(doc: dict[str, Any], gpu: Any, context_gib: float, cached: bool) -> dict[str, Any]:
    """Add the GPU-dependent keys (capacity, headroom, fits) to a cached or fresh simulation."""
    from planner.estimator.simulate.moments import BREAKDOWN_KEYS

    out = dict(doc)
    out["breakdown_gib"] = {k: doc["breakdown_gib"].get(k, 0.0) for k in BREAKDOWN_KEYS}  # the plan's order
    out["estimator"] = dict(doc["estimator"], cached=cached)
    if gpu is not None:
        out["capacity_gib"] = gpu.memory_gib
        out["headroom_gib"] = round(gpu.memory_gib - doc["peak_reserved_gib"] - context_gib, 3)
        out["fits"] = out["headroom_gib"] >= 0
    else:
        out["capacity_gib"] = None
        out["headroom_gib"] = None
    return out
