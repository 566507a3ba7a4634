"""The estimator against published measurements (../shared/data/measurements/published.csv)."""
from __future__ import annotations

import json

from planner.plan import ACCURACY_PATH, measured_accuracy
from planner.validation import load_rows, score, summary


def test_throughput_median_error_meets_the_20_percent_target(measurements_csv):
    s = summary(score(load_rows(measurements_csv)))
    assert s["rows_throughput"] >= 30
    assert s["throughput_median_ape_pct"] <= 20.0


def test_memory_error_stays_at_its_measured_level_and_far_below_the_rules_of_thumb(measurements_csv):
    # The target is 10% MAPE; the model measures 11.5% on 36 rows (see README). This guards against regressions.
    s = summary(score(load_rows(measurements_csv)))
    assert s["rows_memory"] >= 30
    assert s["memory_mape_pct"] <= 12.0
    assert s["memory_mape_pct"] * 10 < s["memory_mape_accelerate_rule_pct"]
    assert s["memory_mape_pct"] * 10 < s["memory_mape_llamafactory_rule_pct"]
    assert s["fit_correct"] >= s["rows_fit"] - 1


def test_the_accuracy_quoted_in_every_plan_is_a_fresh_run_of_the_benchmark(measurements_csv):
    fresh = summary(score(load_rows(measurements_csv)))
    stored = json.loads(ACCURACY_PATH.read_text())["summary"]
    assert stored == fresh, "run: python benchmarks/estimator_accuracy.py --write"
    assert measured_accuracy()["memory_mape_pct"] == fresh["memory_mape_pct"]


def test_every_excluded_row_says_why(measurements_csv):
    for row in load_rows(measurements_csv):
        for kind, why in row.excluded.items():
            assert kind in ("memory", "throughput") and len(why) > 10
