"""The plan document: a job sized on GPUs, priced across offers and local hardware, with its assumptions.

`plan_job()` is the one place that assembles what `gpuplan plan --format json` prints; reports and launch
read this document and never recompute it. Its keys are a contract (see planner/result.py).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from planner.estimator import memory

from planner.estimator import throughput
from planner.estimator.counts import trainable_params
from planner.estimator.estimate import GPU_COUNTS, evaluate, layout
from planner.gpus import GPUS, canonical_gpu, get_gpu, lookup_gpu
from planner.models import ModelArch, resolve_model
from planner.result import to_dict
from train.spec import JobSpec

VERSION = "0.2.0"
GPUS_ORDER = {name: i for i, name in enumerate(GPUS)}
ACCURACY_PATH = Path(__file__).parent / "data" / "accuracy.json"


@lru_cache(maxsize=1)
def measured_accuracy() -> dict[str, Any]:
    """The estimator's error on the published measurements, as last written by
    `python benchmarks/estimator_accuracy.py --write` (a test checks it matches a fresh run)."""
    try:
        with open(ACCURACY_PATH, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {"source": "benchmarks/estimator_accuracy.py (not yet run)"}
    return data.get("summary", {}) | {"source": data.get("source", "benchmarks/estimator_accuracy.py"),
                                      "as_of": data.get("as_of")}


def estimator_assumptions() -> list[dict[str, Any]]:
    """The estimator's constants, each with its source in words (category "estimator")."""
    from planner.estimator.bands import default_band_ratios

    rows: list[dict[str, Any]] = []
    for f in dataclasses.fields(memory.CAL):
        rows.append({"name": f"estimator: {f.name}", "value": getattr(memory.CAL, f.name), "unit": "",
                     "source": memory.SOURCES.get(f.name, "counted (planner/estimator/memory.py)"), "category": "estimator"})
    for f in dataclasses.fields(throughput.TCAL):
        rows.append({"name": f"estimator: {f.name}", "value": getattr(throughput.TCAL, f.name), "unit": "",
                     "source": "fitted on published fine-tuning throughput (torchtune, PEFT, LLaMA-Factory, "
                               "llm-foundry tables, 2023-2026)", "category": "estimator"})
    rows.append({"name": "estimator: NF4 bits per weight (double quantization)", "value": round(memory.NF4_DQ_BITS, 4),
                 "unit": "bits", "source": "Dettmers et al. 2023 (QLoRA): 4 + 8/64 + 32/(64*256)",
                 "category": "estimator"})
    lo, hi = default_band_ratios()
    rows.append({"name": "estimator: memory error band (measured / predicted)", "value": [lo, hi], "unit": "ratio",
                 "source": "10th-90th percentile of published peak memory over the estimate on published "
                           "fine-tuning runs (torchtune, litgpt, PEFT, LLaMA-Factory tables, 2023-2026)",
                 "category": "estimator"})
    return rows


def plan_job(spec: JobSpec, *, provider: str | list[str] | None = None, region: str | None = None,
             spot: bool | None = None, max_hourly: float | None = None, deadline_hours: float | None = None,
             budget: float | None = None, local_profiles: Iterable[str] | None = None, include_local: bool = True,
             runs_per_month: float | None = None, other_use_hours: float = 0.0, compare: bool = True,
             arch: ModelArch | None = None, today: _dt.date | None = None, allow_outlier_prices: bool = False,
             allow_stale_prices: bool = False, as_written: bool = False, horizon_months: int | None = None,
             startup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Size `spec` (on spec.gpu, or on every GPU type x 1/2/4/8 when spec.gpu is None), price it, recommend.

    `local_profiles`: preset names or YAML paths; None = the bundled presets. `runs_per_month`: derive each
    local profile's utilisation from a workload -- this job N times a month on that profile's GPUs, plus
    `other_use_hours` of other work a month -- instead of the profile's own figure -- and the plan gains
    `periods` (cloud, local and hybrid over `horizon_months`, default 36).

    Options compare the same training (the job's global batch) in the fastest configuration that fits each GPU
    type and count (planner.decide.tune); `as_written` keeps the user's configuration. `startup`: overrides of
    pricing.startup.StartupAssumptions. Outlier and stale prices are listed but not ranked unless allowed.
    """
    arch = arch or resolve_model(spec.model)
    if spec.gpu:
        spec = dataclasses.replace(spec, gpu=canonical_gpu(spec.gpu))
    doc: dict[str, Any] = {
        "gpuplan_version": VERSION,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "job": spec.to_dict(),
        "model": arch.summary() | {"params_trainable": trainable_params(arch, spec)},
    }
    warnings: list[str] = []
    from planner.estimator.calibration import load as load_calibration

    cal = load_calibration()  # the user's `gpuplan calibrate` result, if any
    if spec.gpu:
        single = evaluate(arch, spec, spec.gpu, calibration=cal)
        doc.update(to_dict(single))
    else:
        # Every count trains the same global batch (the accumulation follows the GPU count), as the options do.
        from planner.decide.tune import with_global_batch

        grid = []
        for n in GPU_COUNTS:
            spec_n, note = with_global_batch(spec, n)
            for name in GPUS:
                p = evaluate(arch, spec_n, name, n, calibration=cal)
                if note:
                    p.notes.append(note)
                grid.append((GPUS_ORDER[name], n, to_dict(p)))
        doc["gpus"] = [entry for _, _, entry in sorted(grid, key=lambda t: (t[0], t[1]))]

    # Candidates for the comparison: the same global batch on every GPU type and count, tuned per (type, count)
    # once (offers of the same GPU type and count share it).
    from planner.decide.tune import Tuner

    acc = measured_accuracy()
    # The estimator's band already holds the margin: `fits is True` only when its high end fits the card.
    margin = 0.0
    tuner = Tuner(spec, lambda s, g, n: evaluate(arch, s, g, n, with_suggestions=False, with_limits=False,
                                                 calibration=cal),
                  as_written=as_written, margin_fraction=margin,
                  measure=lambda s, g, n: _measure(arch, s, g, n, cal))
    doc["global_batch"] = tuner.batch.to_dict()

    if compare:
        doc.update(_comparison(spec, arch, tuner, provider=provider, region=region, spot=spot, max_hourly=max_hourly,
                               deadline_hours=deadline_hours, budget=budget, local_profiles=local_profiles,
                               include_local=include_local, runs_per_month=runs_per_month,
                               other_use_hours=other_use_hours, today=today, warnings=warnings,
                               allow_outlier=allow_outlier_prices, allow_stale=allow_stale_prices,
                               horizon_months=horizon_months, startup_overrides=startup or {},
                               speed_error=float(acc.get("throughput_median_ape_pct") or 11.7) / 100))
        doc["tuning"] = {"as_written": as_written, "fields": ["batch_size", "grad_accum", "gradient_checkpointing",
                                                              "chunked_loss", "parallel"],
                         "memory_margin_fraction": margin}
    doc["accuracy"] = measured_accuracy()
    doc["assumptions"] = [dict(r, category=r.get("category") or "finance")
                          for r in doc.get("assumptions", [])] + estimator_assumptions()
    doc.setdefault("estimator", {"kind": "analytic", "stack": spec.stack})
    doc.pop("calibration", None)  # present only when one applies
    if cal is not None:
        doc["calibration"] = cal.to_dict() | {"path": cal.path}
        doc["assumptions"] += [dict(r, category=r.get("category") or "estimator") for r in cal.assumptions()]
    if compare:
        from planner.decide.sensitivity import sensitivity_rows

        doc["sensitivity"] = sensitivity_rows(doc)
    doc["warnings"] = warnings + doc.get("warnings", [])
    return doc


def _measure(arch: ModelArch, spec: JobSpec, gpu_name: str, n: int, cal: Any = None) -> tuple[Any, Any, float | None]:
    """(fits, memory, tokens/s) of one configuration, as `evaluate` computes them, the user's calibration
    included (the speed model only runs for configurations that fit)."""
    from planner.estimator.estimate import _memory

    gpu = get_gpu(gpu_name)
    world, nodes = layout(spec, n)
    mem = _memory(arch, spec, gpu, world, cal=cal)
    ok = memory.fits(mem)
    if not ok:
        return ok, mem, None
    tput = throughput.estimate_throughput(arch, spec, gpu, world, nodes)
    if cal is not None:
        tput = cal.apply_speed(gpu.name, tput)
    return ok, mem, tput.tokens_per_s


def job_bytes(spec: JobSpec, arch: ModelArch) -> Any:
    """What one run downloads and uploads. Hub checkpoints are 16-bit (2 bytes per parameter) whatever the
    method (QLoRA quantizes at load); an adapter (LoRA/QLoRA) is saved in 16 bits too, a full fine-tune or a
    merged adapter uploads the whole model."""
    from planner.decide.compare import JobBytes

    total = arch.total_params()
    out = total * 2 if spec.method == "full" or spec.merge_adapter else trainable_params(arch, spec) * 2
    path = spec.data.path
    size = float(os.path.getsize(path)) if path and os.path.isfile(path) else None
    return JobBytes(weights_bytes=total * 2.0, output_bytes=float(out), dataset_tokens=spec.total_tokens(),
                    dataset_file_bytes=size)


def _comparison(spec: JobSpec, arch: ModelArch, tuner: Any, *, provider: Any, region: str | None,
                spot: bool | None, max_hourly: float | None, deadline_hours: float | None, budget: float | None,
                local_profiles: Iterable[str] | None, include_local: bool, runs_per_month: float | None,
                other_use_hours: float, today: _dt.date | None, warnings: list[str], allow_outlier: bool = False,
                allow_stale: bool = False, horizon_months: int | None = None,
                startup_overrides: dict[str, Any] | None = None, speed_error: float = 0.117) -> dict[str, Any]:
    from planner.decide.compare import Filters, compare_options
    from pricing.errors import PricingInputError
    from pricing.startup import StartupAssumptions

    candidate = tuner.plan
    sa = StartupAssumptions().with_overrides(startup_overrides or {})
    from planner.decide.periods import check_workload

    horizon = check_workload(runs_per_month, other_use_hours, horizon_months)
    from pricing.catalog import load_offers
    from pricing.local import load_profile, presets, utilisation_from_workload

    offers = load_offers(provider=provider, region=region, today=today)
    # Offers of GPUs the planner has no table entry for (K80, P100, ...) cannot be sized: leave them out.
    # (~1,000 offers name ~30 GPU types: resolve each name once.)
    sizable = {g: bool(lookup_gpu(g)) for g in {o.gpu for o in offers.offers}}
    known = [o for o in offers.offers if sizable[o.gpu]]
    offers = dataclasses.replace(offers, offers=known)
    profiles = []
    if include_local:
        names = list(local_profiles) if local_profiles else list(presets())
        profiles = [load_profile(n) for n in names]
        profiles = [p for p in profiles if lookup_gpu(p.gpu)]
    if runs_per_month is not None:
        workload = []
        for p in profiles:
            plan = candidate(p.gpu, p.gpu_count)
            if plan.time is None:
                raise PricingInputError("runs_per_month", "needs the job's length",
                                        "give dataset_tokens (or dataset_examples x mean_example_tokens)")
            u = max(0.001, utilisation_from_workload(runs_per_month, plan.time.hours, other_use_hours))
            why = (f"derived: {runs_per_month:g} runs/month x {plan.time.hours:.2f} h + {other_use_hours:g} h other "
                   f"use, over 730 h/month")
            workload.append(dataclasses.replace(p, utilisation=round(u, 4), sources={**p.sources, "utilisation": why}))
        profiles = workload

    filters = Filters(provider=provider, region=region, spot=spot, max_hourly=max_hourly,
                      deadline_hours=deadline_hours, budget=budget, include_local=include_local,
                      allow_outlier=allow_outlier, allow_stale=allow_stale)
    result = compare_options(None, offers, local_profiles=profiles, filters=filters, tune=tuner,
                             startup_assumptions_=sa, job=job_bytes(spec, arch), speed_error=speed_error).to_dict()
    _break_even_vs_recommendation(result, profiles)
    if runs_per_month is not None:
        from planner.decide.periods import periods

        rec = result.get("recommendation")
        cloud = rec if rec and rec.get("target") == "cloud" else None
        if cloud is None:
            ranked = [o for o in result["options"] if o["target"] == "cloud" and o.get("rank_cost")]
            cloud = min(ranked, key=lambda o: o["rank_cost"]) if ranked else None
        local_opts = {o["instance_type"]: o for o in result["options"] if o["target"] == "local" and o["fits"]}
        fitting = [(p, local_opts[p.name]["time_to_result_hours"]) for p in profiles
                   if p.name in local_opts and local_opts[p.name].get("time_to_result_hours")]
        result["periods"] = periods(runs_per_month, horizon, cloud, fitting, other_use_hours)
    return result


def _break_even_vs_recommendation(result: dict[str, Any], profiles: list[Any]) -> None:
    """Each local profile's break-even utilisation against the recommended cloud option's $/GPU-hour (the
    report's local-versus-cloud chart marks it)."""
    from pricing.local import break_even_utilisation

    rec = result.get("recommendation")
    by_name = {p.name: p for p in profiles}
    for entry in result.get("local_profiles", []):
        p = by_name.get(entry["name"])
        if rec is None or rec.get("target") != "cloud" or p is None:
            entry["break_even_vs_recommendation"] = None
            continue
        entry["break_even_vs_recommendation"] = break_even_utilisation(p, rec["usd_per_gpu_hour"])
        entry["recommendation_usd_per_gpu_hour"] = rec["usd_per_gpu_hour"]


