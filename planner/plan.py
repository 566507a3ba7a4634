"""The plan document: a job sized on GPUs, priced across offers and local hardware, with its assumptions.

`plan_job()` is the one place that assembles what `gpuplan plan --format json` prints; reports and launch
read this document and never recompute it. Its keys are a contract (see planner/result.py).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from planner import memory, throughput
from planner.counts import trainable_params
from planner.estimate import GPU_COUNTS, evaluate
from planner.gpus import GPUS, canonical_gpu, lookup_gpu
from planner.models import ModelArch, resolve_model
from planner.result import GpuPlan, to_dict
from train.spec import JobSpec

VERSION = "0.1.0"
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
                     "source": memory.SOURCES.get(f.name, "counted (planner/memory.py)"), "category": "estimator"})
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
             arch: ModelArch | None = None, today: _dt.date | None = None) -> dict[str, Any]:
    """Size `spec` (on spec.gpu, or on every GPU type x 1/2/4/8 when spec.gpu is None), price it, recommend.

    `local_profiles`: preset names or YAML paths; None = the bundled presets. `runs_per_month`: derive each
    local profile's utilisation from a workload -- this job N times a month on that profile's GPUs, plus
    `other_use_hours` of other work a month -- instead of the profile's own figure.
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
        doc["gpus"] = [to_dict(evaluate(arch, spec, name, n, calibration=cal)) for name in GPUS for n in GPU_COUNTS]

    # Candidates for the comparison: the job as given (gpu type from the offer, count from the instance).
    cache: dict[tuple[str, int], GpuPlan] = {}

    def candidate(gpu_name: str, n: int) -> GpuPlan:
        key = (gpu_name, n)
        if key not in cache:
            cache[key] = evaluate(arch, spec, gpu_name, n, with_suggestions=False, with_limits=False,
                                  calibration=cal)
        return cache[key]

    if compare:
        doc.update(_comparison(spec, candidate, provider=provider, region=region, spot=spot, max_hourly=max_hourly,
                               deadline_hours=deadline_hours, budget=budget, local_profiles=local_profiles,
                               include_local=include_local, runs_per_month=runs_per_month,
                               other_use_hours=other_use_hours, today=today, warnings=warnings))
    doc["accuracy"] = measured_accuracy()
    doc["assumptions"] = doc.get("assumptions", []) + estimator_assumptions()
    doc.setdefault("estimator", {"kind": "analytic", "stack": spec.stack})
    doc.pop("calibration", None)  # present only when one applies
    if cal is not None:
        doc["calibration"] = cal.to_dict() | {"path": cal.path}
        doc["assumptions"] += cal.assumptions()
    if compare:
        from planner.sensitivity import sensitivity_rows

        doc["sensitivity"] = sensitivity_rows(doc)
    doc["warnings"] = warnings + doc.get("warnings", [])
    return doc


def _comparison(spec: JobSpec, candidate: Any, *, provider: Any, region: str | None, spot: bool | None,
                max_hourly: float | None, deadline_hours: float | None, budget: float | None,
                local_profiles: Iterable[str] | None, include_local: bool, runs_per_month: float | None,
                other_use_hours: float, today: _dt.date | None, warnings: list[str]) -> dict[str, Any]:
    from planner.compare import Filters, compare_options
    from pricing.catalog import load_offers
    from pricing.errors import PricingInputError
    from pricing.local import load_profile, presets, utilisation_from_workload

    offers = load_offers(provider=provider, region=region, today=today)
    # Offers of GPUs the planner has no table entry for (K80, P100, ...) cannot be sized: leave them out.
    known = [o for o in offers.offers if lookup_gpu(o.gpu)]
    offers = dataclasses.replace(offers, offers=known)
    profiles = []
    if include_local:
        names = list(local_profiles) if local_profiles else list(presets())
        profiles = [load_profile(n) for n in names]
        profiles = [p for p in profiles if lookup_gpu(p.gpu)]
    if runs_per_month is not None:
        if runs_per_month <= 0 or other_use_hours < 0:
            raise PricingInputError("runs_per_month", "must be > 0 (and other use hours >= 0)",
                                    "e.g. --runs-per-month 4 --other-use-hours 100")
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
                      deadline_hours=deadline_hours, budget=budget, include_local=include_local)
    result = compare_options(candidate, offers, local_profiles=profiles, filters=filters).to_dict()
    _break_even_vs_recommendation(result, profiles)
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


