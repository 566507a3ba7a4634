"""The report reads a full plan document (the keys of the shared contract: start-up, price flags, ranges, risks,
alternatives, global batch, periods) and shows it as a finance reviewer needs it: the decision first, period
totals equal to the plan's, one row per offer at its cheapest region, flagged prices marked, finance assumptions
apart from the estimator's constants. A plan without those keys still renders and says what it lacks.

`full_plan_document()` is a real `plan_job(...)` result with a workload (so it carries every one of those keys);
the other report tests import it.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "examples" / "llama3-8b-qlora.yaml"
RUNS_PER_MONTH = 20.0
HORIZON = 36


@functools.lru_cache(maxsize=4)
def _base_plan(runs_per_month: float | None, profiles: tuple[str, ...] | None = None,
               horizon: int | None = None) -> str:
    from planner.plan import plan_job
    from train.spec import load_spec

    doc = plan_job(load_spec(JOB), runs_per_month=runs_per_month, local_profiles=list(profiles) if profiles else None,
                   horizon_months=horizon)
    return json.dumps(doc)


def plan_document(runs_per_month: float | None = RUNS_PER_MONTH, profiles: tuple[str, ...] | None = None) -> dict:
    """A real plan of the flagship example, as `gpuplan plan --format json` would print it."""
    return json.loads(_base_plan(runs_per_month, profiles))


def full_plan_document(runs_per_month: float = RUNS_PER_MONTH, horizon: int = HORIZON) -> dict:
    """A real plan with a workload: every key of the shared contract, filled by the planner itself."""
    doc = json.loads(_base_plan(runs_per_month, None, horizon))
    for key in ("periods", "alternatives", "global_batch"):
        assert key in doc, f"the plan lacks {key}"
    return doc


NEW_OPTION_KEYS = ("startup_hours", "time_to_result_hours", "cost_with_startup_usd", "price_flag", "config",
                   "global_batch_tokens")


def v01_plan_document() -> dict:
    """The same plan as version 0.1 wrote it: none of the decision keys (what `report --from` meets in old files)."""
    doc = plan_document(None)
    for o in doc["options"] + [doc["recommendation"]]:
        for k in NEW_OPTION_KEYS + ("cost_range_usd", "time_to_result_range_hours", "risks"):
            o.pop(k, None)
    for k in ("alternatives", "global_batch", "periods", "tuning"):
        doc.pop(k, None)
    return doc


def _html(doc: dict) -> str:
    from planner.report.page import render_html

    return render_html(doc)


def _section(html: str, name: str) -> str:
    m = re.search(rf'<section id="{name}".*?</section>', html, flags=re.S)
    assert m, f"no section {name}"
    return m.group(0)


def _text(fragment: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest.fixture(scope="module")
def full_doc() -> dict:
    return full_plan_document()


@pytest.fixture(scope="module")
def full_html(full_doc) -> str:
    return _html(full_doc)


def test_first_screen_states_the_decision_its_ranges_risks_and_alternatives(full_doc, full_html):
    from planner.report import fmt
    from planner.report.decision import describe

    rec = full_doc["recommendation"]
    first = _text(_section(full_html, "summary"))
    assert f"{rec['provider']} {rec['instance_type']}" in first and rec["region"] in first
    lo, mid, hi = rec["cost_range_usd"]
    assert fmt.money(mid) in first and f"range {fmt.money(lo)} to {fmt.money(hi)}" in first
    tlo, tmid, thi = rec["time_to_result_range_hours"]
    assert fmt.hours(tmid) in first and f"range {fmt.hours(tlo)} to {fmt.hours(thi)}" in first
    for risk in rec["risks"]:
        assert risk in first
    for alt in full_doc["alternatives"].values():
        assert describe(alt) in first
    assert "USD, before tax" in first
    # warnings about offers that were not recommended are not on the first screen
    for w in full_doc["warnings"]:
        if rec["instance_type"] not in w:
            assert w not in first


def test_period_totals_equal_the_plans_periods(full_doc, full_html):
    from planner.report import fmt

    table = _section(full_html, "periods")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr[^>]*><td>(\w+).*?</tr>", table, flags=re.S)}
    for name, s in full_doc["periods"]["scenarios"].items():
        cells = re.findall(r'<td class="n">([^<]*)</td>', rows[name])
        assert cells[:6] == [fmt.money(s[k]) for k in ("per_run_usd", "per_month_usd", "per_year_usd", "horizon_usd",
                                                       "capex_usd", "running_per_month_usd")], name
    assert f"Cheapest over the horizon: <strong>{full_doc['periods']['cheapest']}</strong>" in table
    assert "<svg" in table and "Cumulative cost" in table


def test_grouped_rows_are_the_cheapest_region_of_each_offer(full_doc):
    from planner.report.groups import GROUP_KEY, cost_key, grouped_options

    groups = grouped_options(full_doc)
    members: dict[tuple, list[dict]] = {}
    for o in full_doc["options"]:
        members.setdefault(tuple(o.get(k) for k in GROUP_KEY), []).append(o)
    assert len(groups) == len(members) < len(full_doc["options"])
    for g in groups:
        opts = members[tuple(g.get(k) for k in GROUP_KEY)]
        best = min(opts, key=cost_key)
        assert g["cost_usd"] == best["cost_usd"] and g["region"] == best["region"]
        assert g["regions"] == len({o["region"] for o in opts})
        assert g["price_low"] == min(o["usd_per_hour"] for o in opts)
    assert sum(g["recommended"] for g in groups) == 1


def test_flagged_prices_are_marked_in_the_table_and_the_chart(full_doc, full_html):
    outliers = [o for o in full_doc["options"] if o["price_flag"] == "outlier"]
    assert outliers, "the fixture should flag some prices"
    table = _section(full_html, "options")
    flagged_rows = re.findall(r'<tr class="[^"]*flagged[^"]*">.*?</tr>', table, flags=re.S)
    assert flagged_rows and all("⚠" in r and ("outlier" in r or "stale" in r) for r in flagged_rows)
    chart = _section(full_html, "cost-time")
    assert "(price outlier)" in chart and "price flagged" in chart


def test_assumptions_for_finance_are_apart_from_the_estimators_constants(full_doc, full_html):
    finance = _text(_section(full_html, "assumptions"))
    appendix = _text(_section(full_html, "engineering"))
    for a in full_doc["assumptions"]:
        if a["category"] == "estimator":
            assert a["name"] in appendix and a["name"] not in finance
        else:
            assert a["name"] in finance
    assert "planner/" not in finance and ".py" not in finance.replace("benchmarks/estimator_accuracy.py", "")


def test_job_section_shows_global_batch_and_the_tuned_configuration(full_doc, full_html):
    job = _text(_section(full_html, "job"))
    gb = full_doc["global_batch"]
    assert f"{gb['sequences']:,} sequences, {gb['tokens']:,} tokens, {gb['steps']:,} steps" in job
    config, changed = full_doc["recommendation"]["config"], full_doc["recommendation"]["changed"]
    assert f"batch_size = {config['batch_size']:,}, grad_accum = {config['grad_accum']:,}" in job
    assert all(c in job for c in changed)  # what the tuning changed from the job as written


def test_a_plan_without_the_new_keys_renders_and_says_what_it_lacks():
    doc = v01_plan_document()
    text = _text(_html(doc))
    assert "Start-up time: not in this plan" in text and "global batch not in this plan" in text
    assert "Per run, month and year" not in text  # no workload given: no period section


def test_one_number_format_everywhere(full_html):
    text = _text(full_html)
    assert not re.search(r"\$\d+\.\d(?!\d)", text), "a dollar amount with one decimal"
    assert not re.search(r"\d(\.\d+)?e[-+]\d", text), "a number in exponent form"
    assert "$0.06 " not in text


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-9, max_value=1e9, allow_nan=False))
def test_money_is_cents_from_a_dollar_and_three_significant_figures_below(x):
    from planner.report.fmt import money

    text = money(x)
    assert text.startswith("$") and "e" not in text
    value = float(text[1:].replace(",", ""))
    if x >= 1 or value >= 1:
        assert re.fullmatch(r"\$[\d,]+\.\d\d", text) and abs(value - x) <= 0.005 + 1e-9 * x
    else:
        assert abs(value - x) <= 0.5 * 10 ** (math.floor(math.log10(x)) - 2) * 1.0001


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_durations_are_minutes_under_an_hour_and_hours_above(h):
    from planner.report.fmt import hours

    text = hours(h)
    if h * 60 < 1:
        assert text in ("< 1 min", "0 min")
    elif text.endswith(" min"):
        assert abs(int(text[:-4]) - h * 60) <= 0.5
    else:
        assert text.endswith(" h") and abs(float(text[:-2].replace(",", "")) - h) <= max(0.006 * h, 0.5)


def test_money_tells_apart_close_small_prices():
    from planner.report.fmt import hours, money

    assert money(0.0579) != money(0.0616)
    assert (money(212.0), money(16.3), money(2e-05)) == ("$212.00", "$16.30", "$0.0000200")
    assert (hours(0.11), hours(2.15), hours(2.2)) == ("7 min", "2.15 h", "2.20 h")


def test_budget_against_actual_sets_measured_runs_beside_the_plan(full_doc, tmp_path):
    rec = full_doc["recommendation"]
    runs = []
    for i, factor in enumerate((0.9, 1.25)):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({"steps": 100, "train_time_s": rec["hours"] * 3600 * factor,
                                                      "tokens_per_s": 1000.0}))
        runs.append(run)
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(full_doc))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "planner.cli", "report", "--from", str(saved), "-o", str(out)]
    for r in runs:
        args += ["--actual", str(r)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=REPO, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "report.json").read_text())
    assert [a["run"] for a in written["actuals"]] == ["run0", "run1"]
    for a, factor in zip(written["actuals"], (0.9, 1.25)):
        assert a["measured_hours"] == pytest.approx(rec["hours"] * factor)
        assert a["measured_cost_usd"] == pytest.approx(rec["usd_per_hour"] * rec["hours"] * factor)
        assert a["cost_diff_pct"] == pytest.approx((factor - 1) * 100)
    section = _text(_section((out / "report.html").read_text(), "actuals"))
    assert "run0" in section and "-10%" in section and "+25%" in section
    bad = subprocess.run([sys.executable, "-m", "planner.cli", "report", "--from", str(saved), "-o",
                          str(tmp_path / "o2"), "--actual", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env=dict(os.environ))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--actual" in bad.stderr


def test_fixture_document_passes_the_schema(full_doc):
    from planner.report.schema import check_schema

    check_schema(copy.deepcopy(full_doc))
