"""The plan's speed caches never change an answer: identity caches fall back to values, shared data stays owned."""
from __future__ import annotations

import dataclasses
import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.decide.compare import compare_options
from planner.estimator.counts import arch_counts, lora_counts
from planner.models import resolve_model
from pricing.gpus import canonical_gpu
from planner.result import GpuPlan, Limits, MemoryEstimate, ThroughputEstimate, TimeEstimate
from pricing.catalog import OfferSet
from pricing.offer import Offer


def test_counts_of_a_changed_architecture_are_its_own_not_the_cached_ones() -> None:
    base = resolve_model("meta-llama/Meta-Llama-3-8B")
    deeper = dataclasses.replace(base, num_layers=base.num_layers + 8)
    assert arch_counts(deeper).total > arch_counts(base).total
    assert lora_counts(deeper, 16, "all-linear").params > lora_counts(base, 16, "all-linear").params
    # an equal but distinct object gets the same counts as the first one
    twin = dataclasses.replace(base)
    assert twin is not base and arch_counts(twin) == arch_counts(base)
    assert lora_counts(twin, 16, ["q_proj", "v_proj"]) == lora_counts(base, 16, ("q_proj", "v_proj"))


def test_an_architecture_built_after_another_was_freed_is_counted_afresh() -> None:
    base = resolve_model("meta-llama/Meta-Llama-3-8B")
    totals = set()
    for extra in range(1, 6):  # freed objects' ids get reused: the cache must not answer for the new object
        arch = dataclasses.replace(base, num_layers=base.num_layers + extra)
        totals.add(arch_counts(arch).total)
        del arch
        gc.collect()
    assert len(totals) == 5


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=24), st.none(), st.integers(), st.lists(st.text(max_size=4), max_size=3)))
def test_gpu_names_resolve_the_same_on_every_call(name) -> None:
    first = canonical_gpu(name)
    assert canonical_gpu(name) == first
    assert first is None or isinstance(first, str)


def test_known_gpu_spellings_still_resolve_through_the_cache() -> None:
    for _ in range(2):
        assert canonical_gpu("RTX 4090") == "RTX4090" and canonical_gpu("h100-80gb") == "H100"
        assert canonical_gpu("NVIDIA H100 80GB HBM3") == "H100" and canonical_gpu("no such gpu") is None


def _h100(gpu: str, gpus: int) -> GpuPlan:
    """A job that fits an H100 at 2,000 tokens/s per GPU, 360 M tokens long (test figures)."""
    tps = 2000.0 * gpus
    return GpuPlan(gpu=gpu, gpus=gpus, nodes=1, fits=True, memory=MemoryEstimate(60, 60, 80, {}, 20),
                   throughput=ThroughputEstimate(tps, 2000.0, 0.4, 1.0, 4096, 1e9, 1e9, 1.0),
                   time=TimeEstimate(360_000_000, 1000, 360_000_000 / tps / 3600), limits=Limits(1, 2048, 1))


def _offer(region: str, usd: float) -> Offer:
    return Offer("aws", "h100x1", region, None, "H100", 1, 80.0, 8, 64, usd, None, "test", "2026-11-01")


def test_options_sharing_a_start_up_each_own_their_breakdown() -> None:
    offers = OfferSet([_offer("r1", 3.0), _offer("r2", 3.1)],
                      {"aws": {"source": "test", "as_of": "2026-11-01", "age_days": 0, "stale": False}})
    cmp_ = compare_options(_h100, offers)
    a, b = cmp_.options
    assert a.startup == b.startup and a.startup["provision"] > 0  # one start-up computed, two options
    before = dict(b.startup)
    a.startup["provision"] = 99.0
    assert b.startup == before and cmp_.to_dict()["options"][1]["startup"] == before
