"""Fit search: the limits are the largest settings that fit, and suggestions make a job fit."""
from __future__ import annotations

import dataclasses

from planner.estimate import evaluate, min_gpus
from planner.gpus import get_gpu
from planner.memory import estimate_memory, fits
from planner.models import resolve_model
from train.spec import spec_from_dict

LLAMA8 = resolve_model("meta-llama/Llama-3.1-8B")
LLAMA70 = resolve_model("meta-llama/Llama-3.1-70B")


def job(**kw):
    return spec_from_dict({"model": "meta-llama/Llama-3.1-8B", "method": "qlora", "seq_len": 2048,
                           "batch_size": 1} | kw)


def test_max_batch_size_fits_and_one_more_does_not():
    spec = job()
    plan = evaluate(LLAMA8, spec, "RTX4090")
    b = plan.limits.max_batch_size
    assert b is not None and b >= 1
    gpu = get_gpu("RTX4090")
    assert fits(estimate_memory(LLAMA8, spec, gpu, 1, batch=b))
    assert not fits(estimate_memory(LLAMA8, spec, gpu, 1, batch=b + 1))


def test_max_seq_len_fits_and_64_more_tokens_do_not():
    spec = job()
    plan = evaluate(LLAMA8, spec, "L4")
    s = plan.limits.max_seq_len
    gpu = get_gpu("L4")
    assert s is not None and s % 64 == 0
    assert fits(estimate_memory(LLAMA8, spec, gpu, 1, seq_len=s))
    assert not fits(estimate_memory(LLAMA8, spec, gpu, 1, seq_len=s + 64))


def test_a_70b_full_fine_tune_does_not_fit_one_a100_and_sharding_finds_the_fewest_gpus():
    spec = spec_from_dict({"model": "meta-llama/Llama-3.1-70B", "method": "full", "optimizer": "adamw",
                           "precision": "bf16", "parallel": "fsdp", "seq_len": 2048})
    plan = evaluate(LLAMA70, spec, "A100-80GB", 1)
    assert not plan.fits
    need = plan.limits.min_gpus
    # 70.6B x (2 + 2 + 4) bytes = 565 GB: 70.6 GB per GPU over 8 (torchtune ran this, published row TT3-7)
    assert need == 8
    assert evaluate(LLAMA70, spec, "A100-80GB", need, with_suggestions=False).fits
    assert not evaluate(LLAMA70, spec, "A100-80GB", need // 2, with_suggestions=False).fits


def test_ddp_replicas_never_fit_by_adding_gpus():
    spec = spec_from_dict({"model": "meta-llama/Llama-3.1-70B", "method": "full", "parallel": "ddp"})
    assert min_gpus(LLAMA70, spec, get_gpu("H100")) is None


def test_suggestions_for_a_job_that_does_not_fit_all_fit_and_are_ranked_by_speed():
    spec = spec_from_dict({"model": "meta-llama/Llama-3.1-8B", "method": "full", "optimizer": "adamw",
                           "precision": "bf16-mixed", "gradient_checkpointing": False, "seq_len": 4096,
                           "batch_size": 4})
    plan = evaluate(LLAMA8, spec, "A100-80GB", 1)
    assert not plan.fits
    assert plan.suggestions, "a job that does not fit must get suggestions"
    assert all(s.fits for s in plan.suggestions)
    ratios = [s.speed_ratio for s in plan.suggestions]
    assert ratios == sorted(ratios, reverse=True)
    # each suggestion really fits when applied
    for s in plan.suggestions:
        changed = dataclasses.replace(spec, **s.overrides)
        n = s.overrides.get("gpus", 1)
        assert evaluate(LLAMA8, changed, "A100-80GB", n, with_suggestions=False).fits, s.change


def test_qlora_of_a_70b_model_fits_one_80gb_gpu_but_not_a_24gb_card():
    spec = spec_from_dict({"model": "meta-llama/Llama-3.1-70B", "method": "qlora", "seq_len": 2048})
    assert evaluate(LLAMA70, spec, "H100", with_suggestions=False).fits
    small = evaluate(LLAMA70, spec, "RTX4090")
    assert not small.fits
    assert any("fsdp" in s.change for s in small.suggestions)


def test_a_job_that_fits_gets_only_faster_suggestions():
    plan = evaluate(LLAMA8, job(), "H100")
    assert plan.fits
    assert all(s.fits and s.speed_ratio > 1 for s in plan.suggestions)
