"""Sensitivity rows: how the recommended option's cost moves with the plan's assumptions, checked against the
plan's own numbers and the price layer's cost models."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from planner.decide.sensitivity import DEFAULT_THROUGHPUT_ERROR_PCT, LOCAL_RANGES, SPOT_RATE_HIGH_MULTIPLIER, local_profile_from, sensitivity_rows

REPO = Path(__file__).resolve().parents[1]


def _spec():
    from train.spec import load_spec

    preferred = REPO / "examples" / "llama3-8b-qlora.yaml"
    found = sorted((REPO / "examples").glob("*.yaml"))
    assert found, "examples/*.yaml: no example job"
    return load_spec(preferred if preferred.exists() else found[0])


def _plan(**kwargs):
    from planner.plan import plan_job

    return plan_job(_spec(), **kwargs)


@pytest.fixture(scope="module")
def spot_doc():
    doc = _plan(spot=True)
    assert doc["recommendation"] and doc["recommendation"]["spot"]
    return doc


@pytest.fixture(scope="module")
def on_demand_doc():
    doc = _plan(spot=False, include_local=False)
    assert doc["recommendation"]["target"] == "cloud" and not doc["recommendation"]["spot"]
    return doc


@pytest.fixture(scope="module")
def local_doc():
    doc = _plan(provider="local", local_profiles=["h100-hgx"])
    assert doc["recommendation"] and doc["recommendation"]["target"] == "local"
    return doc


def _by_name(rows):
    return {r["assumption"].split(" (")[0].split(" estimate")[0]: r for r in rows}


def test_plan_document_carries_these_rows(spot_doc, local_doc):
    assert spot_doc["sensitivity"] == sensitivity_rows(spot_doc)
    assert local_doc["sensitivity"] == sensitivity_rows(local_doc)


def _all_in(rec, train_hours, startup_hours=None, usd_h=None):
    """The plan's own all-in cost: $/h x the provider's billed hours of training + start-up (pricing.startup)."""
    from pricing.startup import billed_hours

    start = rec["startup_hours"] if startup_hours is None else startup_hours
    return (rec["usd_per_hour"] if usd_h is None else usd_h) * billed_hours(rec["provider"], train_hours + start)


def test_throughput_error_moves_hours_inversely(on_demand_doc):
    rec = on_demand_doc["recommendation"]
    rows = sensitivity_rows(on_demand_doc)
    # on-demand cloud: throughput, price, dataset size and start-up time, nothing spot or local
    assert [r["assumption"].split(" (")[0] for r in rows] == ["throughput estimate", "on-demand price", "dataset size",
                                                              "start-up time"]
    row = rows[0]
    e = on_demand_doc["accuracy"].get("throughput_median_ape_pct", DEFAULT_THROUGHPUT_ERROR_PCT) / 100
    assert row["base"] == rec["tokens_per_s"]
    assert row["low"] == pytest.approx(rec["tokens_per_s"] * (1 - e))
    assert row["high"] == pytest.approx(rec["tokens_per_s"] * (1 + e))
    # the all-in cost and the time to result: training hours move inversely, start-up stays
    assert row["base_cost_usd"] == pytest.approx(rec["cost_with_startup_usd"], rel=1e-12)
    assert row["base_time_hours"] == pytest.approx(rec["time_to_result_hours"], rel=1e-12)
    assert row["time_low_hours"] == pytest.approx(rec["hours"] / (1 - e) + rec["startup_hours"], rel=1e-9)
    assert row["time_high_hours"] == pytest.approx(rec["hours"] / (1 + e) + rec["startup_hours"], rel=1e-9)
    assert row["cost_low_usd"] == pytest.approx(_all_in(rec, rec["hours"] / (1 - e)), rel=1e-9)
    assert row["cost_high_usd"] == pytest.approx(_all_in(rec, rec["hours"] / (1 + e)), rel=1e-9)
    assert row["cost_high_usd"] < rec["cost_with_startup_usd"] < row["cost_low_usd"]


def test_spot_preemption_rate_follows_the_spot_overhead_model(spot_doc):
    from pricing.spot import SpotAssumptions, overhead_factor

    rec = spot_doc["recommendation"]
    row = _by_name(sensitivity_rows(spot_doc))["spot preemption rate"]
    base_rate = SpotAssumptions().preemptions_per_hour
    assert (row["base"], row["low"]) == (base_rate, 0.0)
    assert row["high"] == pytest.approx(base_rate * SPOT_RATE_HIGH_MULTIPLIER)
    no_overhead_hours = rec["hours"] / rec["overhead_factor"] * overhead_factor(SpotAssumptions(preemptions_per_hour=0))
    # no preemptions: no overhead and no restarts in the start-up
    startup = rec["startup_hours"] - rec["startup"]["spot_restarts"]
    assert row["cost_low_usd"] == pytest.approx(_all_in(rec, no_overhead_hours, startup), rel=1e-3)
    assert row["time_low_hours"] == pytest.approx(no_overhead_hours + startup, rel=1e-3)
    assert row["cost_low_usd"] < rec["cost_with_startup_usd"] < row["cost_high_usd"]


def test_local_assumptions_move_cost_the_way_ownership_works(local_doc):
    rec = local_doc["recommendation"]
    rows = _by_name(sensitivity_rows(local_doc))
    assert set(LOCAL_RANGES) <= set(rows)
    # more use, longer life: the fixed cost spreads thinner; dearer power or hardware: dearer job
    base = rec["cost_with_startup_usd"]  # all-in: the machine over the time to result
    assert all(rows[k]["base_cost_usd"] == pytest.approx(base, rel=1e-9) for k in LOCAL_RANGES)
    assert rows["utilisation"]["cost_low_usd"] > base > rows["utilisation"]["cost_high_usd"]
    assert rows["lifetime"]["cost_low_usd"] > base > rows["lifetime"]["cost_high_usd"]
    assert rows["electricity price"]["cost_low_usd"] < base < rows["electricity price"]["cost_high_usd"]
    assert rows["hardware price"]["cost_low_usd"] < base < rows["hardware price"]["cost_high_usd"]


def test_local_profile_is_rebuilt_exactly_from_the_document(local_doc):
    from pricing.local import job_cost, load_profile

    entry = next(p for p in local_doc["local_profiles"] if p["name"] == "h100-hgx")
    rebuilt = local_profile_from(entry)
    original = load_profile("h100-hgx")
    assert dataclasses.replace(rebuilt, sources={}) == dataclasses.replace(original, sources={})
    rec = local_doc["recommendation"]
    assert job_cost(rebuilt, rec["hours"], rec["gpus"]).marginal_cost_usd == pytest.approx(rec["cost_usd"])


def test_no_recommendation_no_rows():
    assert sensitivity_rows({"options": [], "recommendation": None}) == []


def test_price_and_dataset_size_scale_the_cost_linearly(spot_doc, on_demand_doc):
    from planner.decide.sensitivity import DATASET_RANGE, PRICE_RANGES

    for doc, kind in ((spot_doc, "spot"), (on_demand_doc, "on-demand")):
        rec = doc["recommendation"]
        rows = _by_name(sensitivity_rows(doc))
        lo, hi = PRICE_RANGES[kind]
        price = rows[f"{kind} price"]
        assert price["low"] == pytest.approx(rec["usd_per_hour"] * lo)
        all_in = rec["cost_with_startup_usd"]
        assert (price["cost_low_usd"], price["cost_high_usd"]) == (pytest.approx(all_in * lo),
                                                                   pytest.approx(all_in * hi))
        size = rows["dataset size"]  # the training hours scale with the tokens; the start-up does not
        assert (size["cost_low_usd"], size["cost_high_usd"]) == (
            pytest.approx(_all_in(rec, rec["hours"] * DATASET_RANGE[0])),
            pytest.approx(_all_in(rec, rec["hours"] * DATASET_RANGE[1])))
        assert size["time_high_hours"] == pytest.approx(rec["hours"] * DATASET_RANGE[1] + rec["startup_hours"])


def test_start_up_time_row_appears_when_the_plan_has_start_up(on_demand_doc):
    rec = dict(on_demand_doc["recommendation"], startup_hours=0.25)
    row = _by_name(sensitivity_rows({**on_demand_doc, "recommendation": rec}))["start-up time"]
    assert (row["low"], row["high"]) == (0.125, 0.5)
    one_billing_step = rec["usd_per_hour"] * 2 / 3600  # aws bills by the second: each end rounds up < 1 s
    assert row["cost_high_usd"] - row["cost_low_usd"] == pytest.approx(rec["usd_per_hour"] * 0.375,
                                                                       abs=one_billing_step)
    assert row["base_cost_usd"] == pytest.approx(rec["cost_usd"] + rec["usd_per_hour"] * 0.25, abs=one_billing_step)
    assert row["time_high_hours"] - row["time_low_hours"] == pytest.approx(0.375)


@pytest.fixture(scope="module")
def mixed_doc():
    doc = _plan()  # cloud and local options; the recommendation is a cloud one
    assert doc["recommendation"]["target"] == "cloud"
    return doc


def test_a_cloud_recommendation_carries_its_local_alternatives_ownership_rows(mixed_doc):
    from pricing.local import job_cost

    spot_doc = mixed_doc
    rows = [r for r in sensitivity_rows(spot_doc) if r.get("alternative")]
    local = min((o for o in spot_doc["options"] if o["target"] == "local" and o["fits"]), key=lambda o: o["cost_usd"])
    assert {r["assumption"] for r in rows} == set(LOCAL_RANGES)
    base = local["cost_with_startup_usd"]  # all-in: the machine over the time to result
    assert all(r["base_cost_usd"] == pytest.approx(base, rel=1e-9) and local["instance_type"] in r["option"]
               for r in rows)
    entry = next(p for p in spot_doc["local_profiles"] if p["name"] == local["instance_type"])
    profile = local_profile_from(entry)
    util = next(r for r in rows if r["assumption"] == "utilisation")
    expected = job_cost(dataclasses.replace(profile, utilisation=util["low"]), local["time_to_result_hours"],
                        local["gpus"])
    assert util["cost_low_usd"] == pytest.approx(expected.loaded_cost_usd)
    assert util["cost_low_usd"] > base > util["cost_high_usd"]


def test_the_report_draws_a_tornado_for_the_recommendation_and_one_for_the_local_alternative(mixed_doc):
    from planner.report.charts import tornado_chart

    spot_doc = mixed_doc
    main, local = tornado_chart(spot_doc), tornado_chart(spot_doc, local=True)
    assert "recommended option" in main and "local alternative" in local
    assert "utilisation" in local and "utilisation" not in main
