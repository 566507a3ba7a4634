"""The cost comparison: fit, hours, cost, ranking, Pareto front and the recommendation."""
from __future__ import annotations

import dataclasses

import pytest

from planner.decide.compare import Filters, compare_options
from planner.result import GpuPlan, Limits, MemoryEstimate, ThroughputEstimate, TimeEstimate
from pricing.catalog import OfferSet, load_offers
from pricing.errors import PricingInputError
from pricing.local import presets
from pricing.offer import Offer
from pricing.spot import SpotAssumptions, overhead_factor

TOKENS = 360_000_000  # tokens in the job
SPEED = {"H100": 2000.0, "A100-80GB": 1000.0, "L4": 250.0, "RTX4090": 400.0}  # tokens/s per GPU (test figures)
NEEDS_GIB = 60.0  # memory the fake job needs per GPU


def fake_evaluate(calls: list | None = None, dataset: bool = True):
    mem = {"H100": 80, "A100-80GB": 80, "L4": 24, "RTX4090": 24}

    def evaluate(gpu: str, gpus: int) -> GpuPlan:
        if calls is not None:
            calls.append((gpu, gpus))
        tps = SPEED.get(gpu, 100.0) * gpus
        need = NEEDS_GIB / (gpus if gpu == "L4" else 1)  # pretend L4 shards across GPUs
        fits = need <= mem.get(gpu, 16)
        return GpuPlan(gpu=gpu, gpus=gpus, nodes=1, fits=fits,
                       memory=MemoryEstimate(need, need, mem.get(gpu, 16), {}, mem.get(gpu, 16) - need),
                       throughput=ThroughputEstimate(tps, tps / gpus, 0.4, 1.0, 4096, 1e9, 1e9, 1.0),
                       time=TimeEstimate(TOKENS, 1000, TOKENS / tps / 3600) if dataset else None,
                       limits=Limits(1, 2048, 1))

    return evaluate


def offer(provider, itype, gpu, n, od, spot=None, region="r1"):
    return Offer(provider, itype, region, "z1" if spot else None, gpu, n, 80.0, 8, 64, od, spot, "test", "2026-11-01")


OFFERS = OfferSet([
    offer("aws", "h100x8", "H100", 8, 55.04, 14.0),   # 8 x 2000 tok/s -> 3.125 h
    offer("lambda", "h100x1", "H100", 1, 3.29),       # 2000 tok/s -> 50 h
    offer("gcp", "a100x1", "A100-80GB", 1, 4.0, 1.5),  # 1000 tok/s -> 100 h
    offer("runpod", "l4x1", "L4", 1, 0.5),            # does not fit
], {"aws": {"source": "test", "as_of": "2026-11-01", "age_days": 0, "stale": False}})


def test_every_offer_priced_with_hours_cost_and_spot_overhead():
    cmp_ = compare_options(fake_evaluate(), OFFERS)
    # 4 on-demand + 2 spot + the L4 at 2 and 4 nodes (no single L4 instance fits)
    assert len(cmp_.options) == 8
    by = {(o.instance_type, o.spot): o for o in cmp_.options if o.nodes == 1}
    h8 = by[("h100x8", False)]
    assert h8.hours == pytest.approx(TOKENS / 16000 / 3600) and h8.cost_usd == pytest.approx(55.04 * h8.hours)
    assert h8.usd_per_gpu_hour == pytest.approx(55.04 / 8)
    assert h8.usd_per_million_tokens == pytest.approx(55.04 / (16000 * 3600 / 1e6))
    s8 = by[("h100x8", True)]
    # lost work and checkpoint writes stretch the training; restarts are paid in start-up, per preemption
    f = overhead_factor(dataclasses.replace(SpotAssumptions(), restart_hours=0.0))
    assert s8.overhead_factor == f and s8.hours == pytest.approx(h8.hours * f) and s8.zone == "z1"
    assert s8.cost_usd == pytest.approx(14.0 * h8.hours * f)
    assert s8.startup["spot_restarts"] > 0 == h8.startup["spot_restarts"]
    assert s8.time_to_result_hours == pytest.approx(s8.hours + s8.startup_hours)
    assert not by[("l4x1", False)].fits and by[("l4x1", False)].rank_cost is None


def test_multi_node_is_considered_when_no_single_instance_fits():
    cmp_ = compare_options(fake_evaluate(), OFFERS)
    l4 = sorted((o for o in cmp_.options if o.gpu == "L4"), key=lambda o: o.nodes)
    assert [(o.nodes, o.gpus, o.fits) for o in l4] == [(1, 1, False), (2, 2, False), (4, 4, True)]
    assert l4[2].usd_per_hour == pytest.approx(4 * 0.5) and "4 nodes" in l4[2].notes[-1]


def test_ranking_pareto_and_recommendation_reason():
    cmp_ = compare_options(fake_evaluate(), OFFERS)
    ranked = sorted((o for o in cmp_.options if o.rank_cost), key=lambda o: o.rank_cost)
    costs = [o.cost_usd for o in ranked]
    assert costs == sorted(costs)
    best = cmp_.recommendation
    assert best is ranked[0] and best.rank_cost == 1
    fastest = min(ranked, key=lambda o: o.hours)
    assert fastest.rank_time == 1 and fastest.pareto and best.pareto
    # nothing on the front is beaten on both cost and time
    for o in (x for x in ranked if x.pareto):
        assert not any(x.cost_usd < o.cost_usd and x.hours < o.hours for x in ranked)
    assert "cheapest" in cmp_.reason and "fastest" in cmp_.reason and best.instance_type in cmp_.reason


def test_deadline_budget_and_filters_change_the_recommendation():
    tight = compare_options(fake_evaluate(), OFFERS, filters=Filters(deadline_hours=10))
    assert tight.recommendation.hours <= 10 and "deadline" in tight.reason
    missed = [o for o in tight.options if o.fits and o.hours > 10]
    assert missed and all(o.rank_cost is None and "deadline" in o.notes[-1] for o in missed)
    none = compare_options(fake_evaluate(), OFFERS, filters=Filters(budget=1.0))
    assert none.recommendation is None and "budget" in none.reason
    od = compare_options(fake_evaluate(), OFFERS, filters=Filters(spot=False, provider="aws"))
    assert {(o.provider, o.spot) for o in od.options} == {("aws", False)}
    cheap = compare_options(fake_evaluate(), OFFERS, filters=Filters(max_hourly=5))
    assert all(o.usd_per_hour <= 5 for o in cheap.options)
    with pytest.raises(PricingInputError):
        compare_options(fake_evaluate(), OFFERS, filters=Filters(budget=-3))


def test_without_dataset_size_ranking_uses_cost_per_million_tokens():
    cmp_ = compare_options(fake_evaluate(dataset=False), OFFERS)
    assert all(o.hours is None and o.cost_usd is None for o in cmp_.options)
    ranked = sorted((o for o in cmp_.options if o.rank_cost), key=lambda o: o.rank_cost)
    per = [o.usd_per_million_tokens for o in ranked]
    assert per == sorted(per) and "per million tokens" in cmp_.reason


def test_local_profiles_priced_by_ownership_and_break_even_reported():
    ps = presets()
    owned = ps["h100-hgx"]
    owned.already_owned = True
    cmp_ = compare_options(fake_evaluate(), OFFERS, local_profiles=[owned])
    loc = [o for o in cmp_.options if o.target == "local"][0]
    energy = (8 * owned.gpu_power_w + owned.host_power_w) / 1000 * owned.pue * owned.electricity_usd_per_kwh
    assert loc.usd_per_hour == pytest.approx(energy) and loc.provider == "local" and loc.gpus == 8
    assert cmp_.recommendation is loc  # electricity only beats every cloud offer
    block = cmp_.local_profiles[0]
    assert block["name"] == "h100-hgx" and block["break_even_against_usd_per_gpu_hour"] == pytest.approx(3.29)
    assert block["marginal_cost_usd"] == pytest.approx(energy * loc.hours)


def test_evaluate_is_called_once_per_gpu_and_count_over_the_full_catalog():
    # (its speed is measured by benchmarks/cli_latency.py, not asserted here)
    calls: list = []
    offers = load_offers(user_caches=False)
    cmp_ = compare_options(fake_evaluate(calls), offers, local_profiles=list(presets().values()))
    assert len(calls) == len(set(calls))
    assert len(cmp_.options) > 1000
    d = cmp_.to_dict()
    assert set(d["options"][0]) >= {"target", "provider", "instance_type", "region", "gpu", "gpus", "spot",
                                    "usd_per_hour", "hours", "cost_usd", "fits", "pareto", "source", "as_of"}
    assert d["recommendation"]["reason"] == cmp_.reason and set(d["prices"]) == {"aws", "gcp", "azure", "lambda", "runpod"}


def test_real_plan_document_carries_the_comparison():
    """The lead's real estimator through plan_job: options, recommendation and prices as the plan contract says."""
    from planner.plan import plan_job
    from train.spec import JobSpec

    doc = plan_job(JobSpec(model="llama-3.1-8b", dataset_tokens=50_000_000), deadline_hours=24, local_profiles=["rtx4090-workstation"])
    rec = doc["recommendation"]
    assert rec["fits"] and rec["time_to_result_hours"] <= 24 and rec["rank_cost"] == 1 and rec["reason"]
    fitting = [o for o in doc["options"] if o["rank_cost"] is not None]
    assert min(o["cost_with_startup_usd"] for o in fitting) == rec["cost_with_startup_usd"]
    assert all(o["price_flag"] == "normal" for o in fitting)
    assert any(o["target"] == "local" for o in doc["options"])
    assert set(doc["prices"]) == {"aws", "gcp", "azure", "lambda", "runpod"}
    assert all({"source", "as_of", "age_days", "stale"} <= set(v) for v in doc["prices"].values())


def test_the_recommendation_pays_a_little_more_to_finish_much_sooner():
    """Among Pareto options it takes the fastest within PAY_FOR_SPEED of the cheapest, and says so."""
    from planner.decide.compare import PAY_FOR_SPEED, Filters, _rank, _recommend
    from planner.result import Option

    def opt(name, usd, hours):
        return Option(target="cloud", provider="aws", instance_type=name, region="r", gpu="H100", gpus=1,
                      spot=False, usd_per_hour=usd / hours, hours=hours, cost_usd=usd, fits=True,
                      usd_per_gpu_hour=usd / hours, tokens_per_s=1.0)

    slow = opt("slow", 1.00, 13.0)
    quick = opt("quick", 1.00 * (1 + PAY_FOR_SPEED) - 0.01, 1.0)
    fastest = opt("fastest", 3.00, 0.1)
    opts = [slow, quick, fastest]
    _rank(opts, Filters())
    rec, reason = _recommend(opts, Filters())
    assert rec is quick
    assert "more than the cheapest" in reason and "slow" in reason and "fastest" in reason
    # beyond the tolerance, the cheapest wins
    dear = opt("dear", 1.00 * (1 + PAY_FOR_SPEED) + 0.05, 1.0)
    opts = [opt("slow", 1.00, 13.0), dear]
    _rank(opts, Filters())
    rec, _ = _recommend(opts, Filters())
    assert rec.instance_type == "slow"
