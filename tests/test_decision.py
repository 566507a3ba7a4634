"""The decision a careful engineer would make: start-up in every option, trustworthy prices, the same training
on every option, tuned per GPU type and count, local only where it fits, and the cost over months."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.decide.compare import Filters, JobBytes, compare_options
from planner.result import GpuPlan, Limits, MemoryEstimate, ThroughputEstimate, TimeEstimate
from pricing.catalog import OfferSet, load_offers
from pricing.confidence import price_flags
from pricing.errors import PricingInputError
from pricing.local import presets
from pricing.offer import Offer
from pricing.startup import StartupAssumptions, billed_hours
from train.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "llama3-8b-qlora.yaml"
MEM = {"H100": 80, "A100-80GB": 80, "L4": 24, "RTX4090": 24}
SPEED = {"H100": 2000.0, "A100-80GB": 1000.0, "L4": 250.0, "RTX4090": 400.0}  # tokens/s per GPU (test figures)
FRESH = {"source": "test", "as_of": "2026-11-28", "age_days": 3, "stale": False}
NO_STARTUP = StartupAssumptions(setup_minutes=0, load_minutes=0, provision_minutes=0, weights_cached=True)


def fake_evaluate(tokens: int, needs_gib: float = 60.0):
    def evaluate(gpu: str, gpus: int) -> GpuPlan:
        tps = SPEED[gpu] * gpus
        fits = needs_gib <= MEM[gpu]
        return GpuPlan(gpu=gpu, gpus=gpus, nodes=1, fits=fits,
                       memory=MemoryEstimate(needs_gib, needs_gib, MEM[gpu], {}, MEM[gpu] - needs_gib),
                       throughput=ThroughputEstimate(tps, tps / gpus, 0.4, 1.0, 16384, 1e9, 1e9, 1.0),
                       time=TimeEstimate(tokens, 100, tokens / tps / 3600), limits=Limits(1, 2048, 1))

    return evaluate


def offer(provider, itype, gpu, n, od, spot=None, region="r1"):
    return Offer(provider, itype, region, "z1" if spot else None, gpu, n, 80.0, 8, 64, od, spot, "test", "2026-11-28")


# ------------------------------------------------------------------------------------------------------
# start-up
# ------------------------------------------------------------------------------------------------------
START_OFFERS = OfferSet([offer("aws", "h100x8", "H100", 8, 16.0), offer("aws", "h100x1", "H100", 1, 2.5)],
                        {"aws": FRESH})


def test_a_job_of_minutes_goes_to_the_small_instance_because_start_up_is_billed_too():
    tokens = 2_000_000  # 2 min on 8 GPUs, 17 min on one
    free = compare_options(fake_evaluate(tokens), START_OFFERS, startup_assumptions_=NO_STARTUP)
    assert free.recommendation.instance_type == "h100x8"
    real = compare_options(fake_evaluate(tokens), START_OFFERS)
    rec = real.recommendation
    assert rec.instance_type == "h100x1"
    assert rec.time_to_result_hours == pytest.approx(rec.hours + rec.startup_hours)
    assert rec.cost_with_startup_usd == pytest.approx(2.5 * billed_hours("aws", rec.time_to_result_hours))
    assert rec.startup_hours > 0.1 and "start-up" in real.reason
    big = next(o for o in real.options if o.instance_type == "h100x8")
    assert big.cost_with_startup_usd > rec.cost_with_startup_usd > big.cost_usd


def test_a_long_job_keeps_the_fast_instance_whatever_the_start_up():
    tokens = 2_000_000_000  # 35 h on 8 GPUs
    for sa in (NO_STARTUP, StartupAssumptions()):
        rec = compare_options(fake_evaluate(tokens), START_OFFERS, startup_assumptions_=sa).recommendation
        assert rec.instance_type == "h100x8"
    rec = compare_options(fake_evaluate(tokens), START_OFFERS).recommendation
    assert rec.startup_hours / rec.time_to_result_hours < 0.01


def test_start_up_parts_follow_the_weights_the_provider_and_a_prebuilt_image():
    job = JobBytes(weights_bytes=16e9, output_bytes=80e6, dataset_tokens=20_000_000)
    plain = compare_options(fake_evaluate(10**8), START_OFFERS, job=job).options[0]
    # 150 MB/s on AWS + 1 min load; 4 bytes per token (parts are shown to 1/10000 h)
    assert plain.startup["weights"] == pytest.approx(16e9 / 150e6 / 3600 + 1 / 60, abs=1e-4)
    assert plain.startup["dataset"] == pytest.approx(80e6 / 150e6 / 3600, abs=1e-4)
    fast = StartupAssumptions().with_overrides({"prebuilt_image": "true", "weights_cached": "yes"})
    quick = compare_options(fake_evaluate(10**8), START_OFFERS, job=job, startup_assumptions_=fast).options[0]
    assert quick.startup["setup"] == pytest.approx(1 / 60, abs=1e-4)
    assert quick.startup["weights"] == pytest.approx(1 / 60, abs=1e-4)
    assert quick.startup_hours < plain.startup_hours - 4 / 60


def test_billing_rounds_up_to_the_providers_granularity_and_minimum():
    assert billed_hours("aws", 10 / 3600) == pytest.approx(60 / 3600)  # 60 s minimum
    assert billed_hours("aws", 0.5) == pytest.approx(0.5)  # per second
    assert billed_hours("lambda", 61 / 3600) == pytest.approx(120 / 3600)  # per minute


# ------------------------------------------------------------------------------------------------------
# price confidence
# ------------------------------------------------------------------------------------------------------
def _regions(spots, od=8.0):
    return [offer("aws", "h100x1", "H100", 1, od, s, region=f"r{i}") for i, s in enumerate(spots, 1)]


def test_an_outlier_spot_price_is_listed_flagged_and_passed_over_unless_allowed():
    offers = OfferSet(_regions([2.5, 2.6, 2.4, 0.9]), {"aws": FRESH})
    cmp_ = compare_options(fake_evaluate(10**8), offers)
    odd = next(o for o in cmp_.options if o.region == "r4" and o.spot)
    assert odd.price_flag == "outlier" and odd.rank_cost is None and "not ranked" in odd.notes[-1]
    assert cmp_.recommendation.region != "r4" and cmp_.recommendation.price_flag == "normal"
    assert "Passed over" in cmp_.reason and "r4" in cmp_.reason and "--allow-outlier-prices" in cmp_.reason
    allowed = compare_options(fake_evaluate(10**8), offers, filters=Filters(allow_outlier=True))
    assert allowed.recommendation.region == "r4" and allowed.recommendation.spot


def test_a_gpu_type_sold_only_at_stale_prices_is_listed_but_not_ranked():
    offers = OfferSet([offer("azure", "a100x1", "A100-80GB", 1, 1.0, 0.3), offer("aws", "h100x1", "H100", 1, 8.0)],
                      {"aws": FRESH, "azure": {**FRESH, "age_days": 90, "stale": True}})
    cmp_ = compare_options(fake_evaluate(10**8), offers)
    a100 = [o for o in cmp_.options if o.gpu == "A100-80GB"]
    assert a100 and all(o.price_flag == "stale" and o.rank_cost is None and o.fits for o in a100)
    assert cmp_.recommendation.gpu == "H100" and "out of date" in cmp_.reason
    allowed = compare_options(fake_evaluate(10**8), offers, filters=Filters(allow_stale=True))
    assert allowed.recommendation.gpu == "A100-80GB"


def test_the_bundled_catalogs_cheap_h100_spot_and_older_azure_catalog_are_flagged():
    offers = load_offers(user_caches=False)
    flags = price_flags(offers.offers, offers.sources)
    assert flags[("aws", "p5.48xlarge", "ap-southeast-3")]["spot"][0] == "outlier"
    assert flags[("aws", "p5.48xlarge", "us-east-1")]["spot"][0] == "normal"
    azure = [f for k, f in flags.items() if k[0] == "azure"]
    assert azure and all(v[0] == "stale" for f in azure for v in f.values())
    share = sum(v[0] == "outlier" for f in flags.values() for v in f.values()) / sum(len(f) for f in flags.values())
    assert share < 0.1  # the rule flags the tail, not the body of the prices


# ------------------------------------------------------------------------------------------------------
# local hardware only where it fits
# ------------------------------------------------------------------------------------------------------
def test_a_local_profile_that_cannot_hold_the_job_is_listed_as_not_fitting_and_never_priced():
    box = presets()["rtx4090-workstation"]
    cmp_ = compare_options(fake_evaluate(10**8), START_OFFERS, local_profiles=[box])
    assert not any(o.target == "local" for o in cmp_.options)
    entry = cmp_.local_profiles[0]
    assert entry["fits"] is False and entry["marginal_cost_usd"] is None and "does not fit" in entry["note"]
    assert any("rtx4090-workstation" in w and "does not fit" in w for w in cmp_.warnings)
    assert cmp_.to_dict()["alternatives"]["local"] is None


# ------------------------------------------------------------------------------------------------------
# the same training on every option, tuned per GPU type and count (the real estimator)
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec():
    return load_spec(EXAMPLE)


@pytest.fixture(scope="module")
def tuner(spec):
    from planner.decide.tune import Tuner
    from planner.estimator.estimate import evaluate
    from planner.models import resolve_model

    arch = resolve_model(spec.model)
    return Tuner(spec, lambda s, g, n: evaluate(arch, s, g, n, with_suggestions=False, with_limits=False),
                 margin_fraction=0.09)


@pytest.mark.parametrize("gpu", ["H100", "L4", "A100-80GB"])
def test_every_gpu_count_trains_the_same_global_batch_and_steps(tuner, spec, gpu):
    seen = set()
    for n in (1, 2, 4, 8):
        t = tuner(gpu, n)
        cfg = t.config
        assert t.keeps_global_batch and cfg["batch_size"] * cfg["grad_accum"] * n == 8
        seen.add((t.plan.throughput.tokens_per_step, t.plan.time.steps))
    assert seen == {(8 * spec.seq_len, 1221)}
    wide = tuner(gpu, 16)  # more GPUs than sequences in a step
    assert not wide.keeps_global_batch


def test_an_80gb_card_drops_checkpointing_and_runs_faster_than_the_job_as_written(tuner, spec):
    from planner.decide.tune import Tuner

    tuned = tuner("H100", 1)
    written = Tuner(spec, tuner.evaluate, as_written=True)("H100", 1)
    assert tuned.config["gradient_checkpointing"] is False and tuned.changed
    assert written.config["gradient_checkpointing"] is True and not written.changed
    assert tuned.plan.throughput.tokens_per_s > 1.2 * written.plan.throughput.tokens_per_s
    assert tuned.plan.memory.headroom_gib >= 0.09 * tuned.plan.memory.peak_reserved_gib


@pytest.fixture(scope="module")
def doc(spec):
    from planner.plan import plan_job

    return plan_job(spec, local_profiles=["rtx4090-workstation"])


def test_every_option_of_the_plan_has_the_same_global_batch(doc):
    gb = doc["global_batch"]
    assert gb == {"sequences": 8, "tokens": 8 * 2048, "steps": 1221}
    fitting = [o for o in doc["options"] if o["fits"] and o["keeps_global_batch"]]
    assert {o["global_batch_tokens"] for o in fitting} == {gb["tokens"]}
    assert {o["gpus"] for o in fitting} >= {1, 2, 4, 8}
    # 3, 5 or 6 GPUs (RunPod) cannot split 8 sequences evenly: marked, never ranked
    odd = [o for o in doc["options"] if o["fits"] and not o["keeps_global_batch"]]
    assert odd and all(o["gpus"] % 8 and not o["rank_cost"] for o in odd if o["gpus"] < 8)
    assert all(o["rank_cost"] is None for o in odd)
    for o in fitting:
        cfg = o["config"]
        assert cfg["batch_size"] * cfg["grad_accum"] * o["gpus"] == gb["sequences"]


def test_the_recommendation_comes_with_ranges_risks_and_alternatives(doc):
    rec = doc["recommendation"]
    lo, mid, hi = rec["cost_range_usd"]
    assert lo < mid < hi and mid == pytest.approx(rec["cost_with_startup_usd"])
    tlo, tmid, thi = rec["time_to_result_range_hours"]
    assert tlo < tmid < thi and tmid == pytest.approx(rec["time_to_result_hours"])
    assert rec["risks"] and all(isinstance(r, str) and "\n" not in r for r in rec["risks"])
    alt = doc["alternatives"]
    assert set(alt) == {"cheapest_on_demand", "fastest", "local"}
    assert alt["cheapest_on_demand"]["spot"] is False and alt["fastest"]["rank_time"] == 1
    assert all(r["category"] in ("finance", "estimator") and r["source"] for r in doc["assumptions"])


@pytest.mark.parametrize("pick", ["recommendation", "multi"])
def test_an_options_tuned_config_planned_alone_gives_the_same_memory_and_speed(doc, pick):
    from click.testing import CliRunner

    from planner.cli.plan import plan as plan_cmd

    if pick == "recommendation":
        o = doc["recommendation"]
    else:
        o = next(x for x in doc["options"] if x["fits"] and x["gpus"] == 4 and x["target"] == "cloud")
    c = o["config"]
    args = [str(EXAMPLE), "--gpu", o["gpu"], "--gpus", str(o["gpus"]), "--batch-size", str(c["batch_size"]),
            "--grad-accum", str(c["grad_accum"]), "--parallel", c["parallel"],
            "--gradient-checkpointing" if c["gradient_checkpointing"] else "--no-gradient-checkpointing",
            "--chunked-loss" if c["chunked_loss"] else "--no-chunked-loss", "--format", "json", "--no-local"]
    r = CliRunner().invoke(plan_cmd, args)
    assert r.exit_code == 0, r.output
    alone = json.loads(r.output[r.output.index("{"):r.output.rindex("}") + 1])
    assert alone["memory"]["peak_reserved_gib"] == pytest.approx(o["peak_reserved_gib"])
    assert alone["throughput"]["tokens_per_s"] == pytest.approx(o["tokens_per_s"])
    assert alone["time"]["steps"] == doc["global_batch"]["steps"]


def test_launch_ships_the_configuration_the_plan_priced_and_as_written_keeps_yours(doc, spec, tmp_path, monkeypatch):
    from launch.prepare import prepare_launch
    from planner.plan import plan_job

    monkeypatch.setenv("HOME", str(tmp_path))
    cloud_doc = {**doc, "options": [o for o in doc["options"] if o["target"] == "cloud"]}
    rec = cloud_doc["recommendation"]
    prepared = prepare_launch(spec, cloud_doc, "cloud", launch_root=tmp_path / "l", bucket="s3://b/x")
    assert prepared.option["instance_type"] == rec["instance_type"]
    shipped = yaml.safe_load(prepared.spec_path.read_text())
    assert {k: shipped[k] for k in rec["config"]} == rec["config"]
    assert shipped["gradient_checkpointing"] is False and "gpuplan plan priced" in prepared.spec_path.read_text()

    written = plan_job(spec, include_local=False, as_written=True)
    p2 = prepare_launch(spec, written, "cloud", launch_root=tmp_path / "w", bucket="s3://b/x")
    kept = yaml.safe_load(p2.spec_path.read_text())
    assert kept["gradient_checkpointing"] is True and kept["batch_size"] == spec.batch_size
    assert kept["batch_size"] * kept["grad_accum"] * kept["gpus"] * kept["nodes"] == 8


# ------------------------------------------------------------------------------------------------------
# periods
# ------------------------------------------------------------------------------------------------------
def test_runs_per_month_prices_cloud_local_and_hybrid_over_the_horizon(spec):
    from planner.plan import plan_job

    doc = plan_job(spec, local_profiles=["rtx4090-workstation"], runs_per_month=300, horizon_months=24)
    per = doc["periods"]
    assert per["horizon_months"] == 24 and per["currency"] == "USD" and per["local_profile"] == "rtx4090-workstation"
    sc = per["scenarios"]
    assert set(sc) == {"cloud", "local", "hybrid"}
    for s in sc.values():
        assert len(s["cumulative_usd"]) == 25 and s["cumulative_usd"][0] == pytest.approx(s["capex_usd"])
        assert s["horizon_usd"] == pytest.approx(s["capex_usd"] + 24 * s["per_month_usd"], abs=0.05)
    rec = doc["recommendation"]
    cloud = rec if rec["target"] == "cloud" else min(
        (o for o in doc["options"] if o["target"] == "cloud" and o["rank_cost"]), key=lambda o: o["rank_cost"])
    assert sc["cloud"]["per_month_usd"] == pytest.approx(300 * cloud["cost_with_startup_usd"], rel=1e-3)
    assert cloud["instance_type"] in per["cloud_option"]
    # 300 runs of ~3 h do not fit in a month on one RTX 4090: the local machine takes what fits
    assert sc["local"]["feasible"] is False and 0 < sc["hybrid"]["local_share"] < 1
    assert per["cheapest"] in ("cloud", "hybrid")
    pb = sc["hybrid"]["payback_month"]
    if pb is not None:
        assert sc["hybrid"]["cumulative_usd"][pb] <= sc["cloud"]["cumulative_usd"][pb]


def test_bad_horizon_is_one_line_naming_the_flag(spec):
    from planner.plan import plan_job

    with pytest.raises(PricingInputError, match="horizon_months"):
        plan_job(spec, runs_per_month=4, horizon_months=0)


# ------------------------------------------------------------------------------------------------------
# user input: --startup KEY=VALUE
# ------------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["setup_minutes", "weights_cached", "download_mb_per_s", "nope", "load-minutes",
                                        "bytes_per_token"]),
                       st.one_of(st.text(max_size=8), st.floats(allow_nan=True), st.integers(-5, 10**6)), max_size=4))
def test_startup_overrides_are_accepted_or_refused_in_one_line(over):
    try:
        a = StartupAssumptions().with_overrides(over)
    except PricingInputError as e:
        assert "\n" not in str(e) and str(e).startswith("startup")
        return
    for name in ("setup_minutes", "download_mb_per_s", "bytes_per_token", "load_minutes"):
        v = getattr(a, name)
        assert v is None or (v >= 0 and v == v and v != float("inf"))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=4))
def test_startup_flag_parser_never_crashes(items):
    from planner.cli.plan import parse_startup

    try:
        out = parse_startup(items)
    except PricingInputError as e:
        assert "\n" not in str(e)
        return
    assert all("=" in i for i in items) and len(out) <= len(items)


def test_cli_bad_startup_is_exit_2_and_one_line():
    from planner.cli import main

    with pytest.raises(SystemExit) as e:
        main([("plan"), str(EXAMPLE), "--startup", "setup_minutes=-1"])
    assert e.value.code == 2


# ------------------------------------------------------------------------------------------------------
# the table at 100 columns
# ------------------------------------------------------------------------------------------------------
def test_the_options_table_is_readable_at_100_columns(doc):
    from rich.console import Console

    from planner.cli.plan_table import print_plan

    console = Console(width=100, record=True, color_system=None)
    print_plan(doc, console=console)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 100
    ranked = sorted((o for o in doc["options"] if o.get("rank_cost")), key=lambda o: o["rank_cost"])[:10]
    for o in ranked:
        assert o["instance_type"] in text and f"{o['gpus']}x {o['gpu']}" in text
        assert o["region"] is None or o["region"] in text
    assert "training" in text and "to result" in text and "start-up" in text


def test_a_long_instance_name_is_not_cut_at_100_columns(doc):
    from rich.console import Console

    from planner.cli.plan_table import print_plan

    o = dict(doc["recommendation"], provider="azure", instance_type="Standard_ND96amsr_A100_v4",
             region="southeastasia-2", gpus=8, gpu="A100-80GB", rank_cost=1)
    console = Console(width=100, record=True, color_system=None)
    print_plan({**doc, "options": [o]}, console=console)
    text = console.export_text()
    assert "Standard_ND96amsr_A100_v4" in text and "southeastasia-2" in text and "8x A100-80GB" in text
    assert "…" not in text


def test_more_gpus_than_the_global_batch_allows_are_marked_not_compared(spec, tuner):
    import dataclasses as dc

    from planner.decide.tune import Tuner

    small = dc.replace(spec, batch_size=1, grad_accum=2)  # 2 sequences per optimizer step
    t = Tuner(small, tuner.evaluate, margin_fraction=0.09)
    offers = OfferSet([offer("aws", "h100x8", "H100", 8, 16.0), offer("aws", "h100x2", "H100", 2, 5.0)],
                      {"aws": FRESH})
    cmp_ = compare_options(None, offers, tune=t)
    wide = next(o for o in cmp_.options if o.gpus == 8)
    assert wide.fits and not wide.keeps_global_batch and wide.rank_cost is None and "grows" in wide.notes[-1]
    assert wide.global_batch_tokens == 8 * spec.seq_len  # one sequence per GPU: the batch grows from 2 to 8
    assert cmp_.recommendation.gpus == 2 and cmp_.recommendation.global_batch_tokens == 2 * spec.seq_len
    assert any("8 GPUs cannot keep the job's global batch" in w for w in cmp_.warnings)
    # when nothing keeps it, the options that grow it are ranked, and the first warning says so
    only_wide = OfferSet([offer("aws", "h100x8", "H100", 8, 16.0)], {"aws": FRESH})
    grown = compare_options(None, only_wide, tune=t)
    assert grown.recommendation.gpus == 8 and "keeps the job's global batch" in grown.warnings[0]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 10**7), st.booleans()),
       st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 1000)),
       st.one_of(st.none(), st.integers(-3, 300), st.floats(allow_nan=True), st.booleans()))
def test_workload_flags_are_accepted_or_refused_naming_the_flag(runs, other, horizon):
    from planner.decide.periods import check_workload

    try:
        months = check_workload(runs, other, horizon)
    except PricingInputError as e:
        assert str(e).split(":")[0] in ("runs_per_month", "other_use_hours", "horizon_months") and "\n" not in str(e)
        return
    assert 1 <= months <= 240 and (runs is None or runs > 0) and 0 <= other <= 730


def test_gpuplan_launch_dry_run_ships_the_tuned_job(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SKY_RUNTIME_DIR", "SKYPILOT_GLOBAL_CONFIG")}
    env.update(HOME=str(tmp_path), GPUPLAN_HOME=str(tmp_path / "gpuplan"), SKYPILOT_DISABLE_LOCAL_API_SERVER="1",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "planner.cli", "launch", str(EXAMPLE), "--dry-run"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "gpuplan plan priced this option with" in r.stdout and "all-in" not in r.stderr
    # nothing is staged on a dry run: the job.yaml it would ship is printed between its header and the end line
    text = r.stdout.split("--- job.yaml (shipped in the workdir; the trainer reads it) ---\n", 1)[1]
    shipped = yaml.safe_load(text.split("\n--- SkyPilot task", 1)[0])
    assert not (tmp_path / "gpuplan" / "launches").exists()
    assert shipped["gradient_checkpointing"] is False  # the tuned configuration, not the job as written
    assert shipped["batch_size"] * shipped["grad_accum"] * shipped["gpus"] * shipped["nodes"] == 8


def test_the_8b_example_no_longer_rests_on_an_outlier_price_or_free_start_up(doc):
    """v0.1 recommended 8x H100 spot in ap-southeast-3, '7 min for $0.83': an outlier price, start-up free."""
    rec = doc["recommendation"]
    old = [o for o in doc["options"] if o["instance_type"] == "p5.48xlarge" and o["region"] == "ap-southeast-3"
           and o["spot"]]
    assert old and old[0]["price_flag"] == "outlier" and old[0]["rank_cost"] is None
    assert (rec["instance_type"], rec["region"]) != ("p5.48xlarge", "ap-southeast-3")
    assert rec["price_flag"] == "normal" and rec["cost_with_startup_usd"] > rec["cost_usd"]
    # the reason speaks money and time: all-in cost, time to result, and what start-up did to the ranking
    assert "all-in" in rec["reason"] and "Counting training alone" in rec["reason"]
    assert "start-up" in rec["reason"] and "Passed over" in rec["reason"]


def test_the_gpu_grid_trains_the_same_global_batch_at_every_count(doc):
    steps = {p["time"]["steps"] for p in doc["gpus"]}
    assert steps == {doc["global_batch"]["steps"]}
    assert {p["throughput"]["tokens_per_step"] for p in doc["gpus"]} == {doc["global_batch"]["tokens"]}
    eight = next(p for p in doc["gpus"] if p["gpu"] == "H100" and p["gpus"] == 8)
    assert "accumulation 1 on 8 GPUs keeps the job's global batch of 8 sequences" in eight["notes"]


def test_launching_a_flagged_price_on_request_says_so(doc, spec, tmp_path, monkeypatch):
    from launch.prepare import prepare_launch

    monkeypatch.setenv("HOME", str(tmp_path))
    cloud_doc = {**doc, "options": [o for o in doc["options"] if o["target"] == "cloud"]}
    p = prepare_launch(spec, cloud_doc, "cloud", provider="aws", region="ap-southeast-3", gpu="H100", gpus=8,
                       spot=True, launch_root=tmp_path / "l", bucket="s3://b/x")
    assert p.option["price_flag"] == "outlier" and any("flags this price outlier" in n for n in p.notes)


def test_a_local_data_file_is_sized_from_disk(spec, tmp_path):
    from planner.models import resolve_model
    from planner.plan import job_bytes

    data = tmp_path / "train.jsonl"
    data.write_bytes(b"x" * 123_456)
    with_file = dataclasses.replace(spec, data=dataclasses.replace(spec.data, path=str(data)))
    assert job_bytes(with_file, resolve_model(spec.model)).dataset_file_bytes == 123_456
    hub = job_bytes(spec, resolve_model(spec.model))
    assert hub.dataset_file_bytes is None and hub.weights_bytes == pytest.approx(2 * 8_030_261_248)
