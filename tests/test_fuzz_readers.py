"""Property-based fuzzing of every reader of user input and downloaded data: whatever hypothesis generates, the
job spec (file and flags), model-config reader, local profiles, price cache/snapshot reader and SkyPilot catalog
reader end in a valid result or one input error (exit 2 at the CLI), within a time limit, and what they accept
is finite and in range. Bounded examples so CI stays fast."""
from __future__ import annotations

import contextlib
import io
import json
import math
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing.errors import PricingInputError
from train.spec import SpecError

FAST = settings(max_examples=60, deadline=timedelta(seconds=5), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=20, deadline=timedelta(seconds=20), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                      max_leaves=12)
NUMBER_TEXT = st.sampled_from(["0", "-1", "1", "2048", "1e309", "-inf", "inf", "nan", "NaN", "1e30", "99999999999",
                               "9223372036854775808", "0.5", "1_000", "", " ", "abc", "0x10", "1e-320", "+5"])


# ---------------------------------------------------------------------------------------------------------------
# Job spec
# ---------------------------------------------------------------------------------------------------------------
from train.spec import _TOP_FIELDS, JobSpec, apply_overrides, load_spec  # noqa: E402

field_names = st.sampled_from(sorted(_TOP_FIELDS)) | st.text(max_size=12)


def _spec_is_sane(spec: JobSpec) -> None:
    for name in ("seq_len", "batch_size", "grad_accum", "gpus", "nodes", "lora_r"):
        v = getattr(spec, name)
        assert isinstance(v, int) and 1 <= v <= 2 ** 22
    assert math.isfinite(spec.epochs) and math.isfinite(spec.learning_rate) and 0 <= spec.lora_dropout < 1


@FAST
@given(st.dictionaries(field_names, values, max_size=6))
def test_any_mapping_of_fields_is_a_spec_or_one_spec_error(raw):
    try:
        spec = apply_overrides(JobSpec(), {"model": "x", **raw}, require_model=False)
    except SpecError as exc:
        assert "\n" not in exc.one_line() and len(exc.one_line()) < 600
        return
    _spec_is_sane(spec)


@FAST
@given(st.dictionaries(field_names, values, max_size=6))
def test_any_yaml_spec_file_is_a_spec_or_one_spec_error(tmp_path, raw):
    p = tmp_path / "job.yaml"
    p.write_text(yaml.safe_dump({"model": "x", **raw}, allow_unicode=False))
    try:
        spec = load_spec(p)
    except SpecError as exc:
        assert "\n" not in exc.one_line() and len(exc.one_line()) < 600
        return
    _spec_is_sane(spec)


@FAST
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_as_a_spec_file_are_a_spec_or_one_spec_error(tmp_path, data):
    p = tmp_path / "job.yaml"
    p.write_bytes(data)
    try:
        load_spec(p, require_model=False)
    except SpecError as exc:
        assert "\n" not in exc.one_line()


def _run_cli(*args: str) -> tuple[int, str, str]:
    from planner.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


SPEC_FLAG_NAMES = ["--lora-r", "--lora-alpha", "--seq-len", "--batch-size", "--grad-accum", "--epochs", "--gpus",
                   "--nodes", "--dataset-tokens", "--mean-example-tokens", "--budget", "--deadline-hours",
                   "--max-hourly", "--runs-per-month", "--top", "--method", "--parallel", "--precision",
                   "--optimizer", "--lora-targets", "--name", "--stack"]


@SLOW
@given(st.lists(st.tuples(st.sampled_from(SPEC_FLAG_NAMES), NUMBER_TEXT | st.text(max_size=20)), min_size=1,
                max_size=3))
def test_any_plan_flags_end_in_a_plan_or_one_line_and_exit_2(tmp_path, monkeypatch, flags):
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    args = [a for pair in flags for a in pair]
    rc, out, err = _run_cli("plan", "--model", "meta-llama/Llama-3.1-8B", "--gpu", "A100-80GB", "--no-local",
                            "--format", "json", *args)
    assert rc in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err
    if rc == 2:
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    else:
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the plan JSON"))


# ---------------------------------------------------------------------------------------------------------------
# Model config.json
# ---------------------------------------------------------------------------------------------------------------
LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False}
CONFIG_KEYS = st.sampled_from(sorted(LLAMA) + ["head_dim", "max_position_embeddings", "_name_or_path", "text_config",
                                               "num_local_experts", "num_experts_per_tok", "attention_bias",
                                               "mlp_bias", "multi_query"])


@FAST
@given(st.dictionaries(CONFIG_KEYS, values, max_size=4), st.sampled_from(["llama", "mixtral", "falcon", "gpt_bigcode",
                                                                          "qwen3_moe", "gemma3", "phi3", "other"]))
def test_any_config_values_give_an_exact_model_or_one_spec_error(tmp_path, changes, mtype):
    from planner.models import resolve_model

    p = tmp_path / "config.json"
    p.write_text(json.dumps({**LLAMA, "model_type": mtype, **changes}, allow_nan=True))
    try:
        arch = resolve_model(str(p))
    except SpecError as exc:
        assert exc.field == "model" and "\n" not in exc.one_line() and len(exc.one_line()) < 600
        return
    n = arch.total_params()
    assert isinstance(n, int) and n > 0 and isinstance(arch.tie_embeddings, bool)
    assert arch.hf_id is None or isinstance(arch.hf_id, str)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_config_json_are_a_model_or_one_spec_error(tmp_path, data):
    from planner.models import resolve_model

    p = tmp_path / "config.json"
    p.write_bytes(data)
    try:
        resolve_model(str(p))
    except SpecError as exc:
        assert exc.field == "model"


# ---------------------------------------------------------------------------------------------------------------
# Local profiles
# ---------------------------------------------------------------------------------------------------------------
PROFILE_KEYS = st.sampled_from(["gpu", "gpu_count", "purchase_price_usd", "other_capex_usd", "lifetime_years",
                                "residual_value_pct", "gpu_power_w", "host_power_w", "pue", "electricity_usd_per_kwh",
                                "maintenance_pct_per_year", "cost_of_capital_pct", "already_owned", "utilisation",
                                "sources", "name", "base", "workload", "runs_per_month", "job_hours"])


@FAST
@given(st.dictionaries(PROFILE_KEYS | st.text(max_size=8), values, max_size=4))
def test_any_local_profile_file_is_a_profile_with_finite_costs_or_one_error(tmp_path, changes):
    from pricing.local import load_profile, usd_per_gpu_hour

    p = tmp_path / "profile.yaml"
    p.write_text(yaml.safe_dump({"base": "rtx4090-workstation", **changes}))
    try:
        prof = load_profile(str(p))
    except PricingInputError as exc:
        assert "\n" not in exc.one_line() and len(exc.one_line()) < 600
        return
    cost = usd_per_gpu_hour(prof)
    assert math.isfinite(cost) and cost >= 0


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_local_profile_are_a_profile_or_one_error(tmp_path, data):
    from pricing.local import load_profile

    p = tmp_path / "profile.yaml"
    p.write_bytes(data)
    try:
        load_profile(str(p))
    except PricingInputError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# Price cache / snapshot
# ---------------------------------------------------------------------------------------------------------------
ROW = ["aws", "p4d.24xlarge", "us-east-1", None, "A100", 8, 40, 96, 1152, 32.77, 10.0, "live aws", "2099-01-01", []]
COLS = ["provider", "instance_type", "region", "zone", "gpu", "gpu_count", "gpu_memory_gib", "vcpus", "ram_gib",
        "usd_per_hour", "spot_usd_per_hour", "source", "as_of", "notes"]


def _doc(rows: list, **top) -> dict:
    doc = {"format": "gpuplan-offers/1", "providers": {"aws": {"source": "live aws", "as_of": "2099-01-01"}},
           "columns": COLS, "offers": rows}
    doc.update(top)
    return doc


@FAST
@given(st.lists(st.lists(st.tuples(st.integers(0, len(ROW) - 1), values), max_size=3), max_size=4),
       st.dictionaries(st.sampled_from(["providers", "columns", "offers", "dropped", "warnings", "built_at"]), values,
                       max_size=1))
def test_any_offers_document_gives_valid_offers_or_is_skipped(row_changes, top):
    from pricing.snapshot import loads

    rows = []
    for changes in row_changes:
        r = list(ROW)
        for i, v in changes:
            r[i] = v
        rows.append(r)
    text = json.dumps(_doc(rows, **top), allow_nan=True)
    try:
        f = loads(text, "cache")
    except ValueError:  # the whole file is skipped with a warning (PricingInputError is a ValueError)
        return
    for o in f.offers:
        assert 1 <= o.gpu_count <= 16 and isinstance(o.gpu_count, int)
        for price in (o.usd_per_hour, o.spot_usd_per_hour):
            assert price is None or (math.isfinite(price) and price > 0)
        json.dumps(o.to_dict(), allow_nan=False)
    assert all(isinstance(w, str) for w in f.warnings)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_as_a_price_cache_are_warned_about_not_fatal(tmp_path, data):
    from pricing.catalog import load_offers

    (tmp_path / "aws.json").write_bytes(data)
    s = load_offers(provider="aws", cache_directory=tmp_path, user_caches=True)
    assert any("aws.json" in w for w in s.warnings) or s.offers


# ---------------------------------------------------------------------------------------------------------------
# SkyPilot catalogs
# ---------------------------------------------------------------------------------------------------------------
AWS_COLS = ["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "GpuInfo", "Price",
            "SpotPrice", "Region", "AvailabilityZone", "Arch"]
AWS_ROW = ["p4d.24xlarge", "A100", "8", "96", "1152", "", "32.77", "10.0", "us-east-1", "us-east-1a", "x86_64"]
cells = NUMBER_TEXT | st.text(max_size=20) | st.sampled_from(["H100", "A100", "T4", "inf", "a" * 300])


@FAST
@given(st.lists(st.lists(st.tuples(st.integers(0, len(AWS_ROW) - 1), cells), max_size=3), min_size=1, max_size=5),
       st.sampled_from(["aws", "gcp", "lambda", "runpod", "azure"]))
def test_any_catalog_rows_give_valid_offers_or_one_error(tmp_path, row_changes, provider):
    import csv

    from pricing.skypilot_csv import read_catalog

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(AWS_COLS)
    for changes in row_changes:
        r = list(AWS_ROW)
        for i, v in changes:
            r[i] = v
        w.writerow(r)
    p = tmp_path / "vms.csv"
    p.write_text(buf.getvalue())
    try:
        offers, dropped, warnings = read_catalog(p, provider, "test", "2099-01-01")
    except PricingInputError as exc:
        assert exc.field == "catalog"
        return
    for o in offers:
        assert 1 <= o.gpu_count <= 16
        assert o.usd_per_hour is not None and math.isfinite(o.usd_per_hour) and o.usd_per_hour > 0
        assert o.spot_usd_per_hour is None or 0 < o.spot_usd_per_hour < o.usd_per_hour
        json.dumps(o.to_dict(), allow_nan=False)


@FAST
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_as_a_catalog_are_offers_or_one_error(tmp_path, data):
    from pricing.skypilot_csv import read_catalog

    p = tmp_path / "vms.csv"
    p.write_bytes(data)
    try:
        read_catalog(p, "aws", "test", "2099-01-01")
    except PricingInputError as exc:
        assert exc.field == "catalog"


# ---------------------------------------------------------------------------------------------------------------
# Comparison flags and switch pairs
# ---------------------------------------------------------------------------------------------------------------
@FAST
@given(st.dictionaries(st.sampled_from(["budget", "max_hourly", "deadline_hours", "runs_per_month", "other_use_hours",
                                        "top", "horizon_months"]),
                       st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 10 ** 12) | st.none(),
                       max_size=3))
def test_comparison_flags_are_finite_and_in_range_or_one_error(kwargs):
    from planner.inputs.flags import PLAN_FLAG_RANGES, check_plan_flags

    try:
        check_plan_flags(kwargs)
    except SpecError as exc:
        assert exc.field.startswith("--") and "\n" not in exc.one_line()
        return
    for flag, (key, low, high, _incl) in PLAN_FLAG_RANGES.items():
        v = kwargs.get(key)
        assert v is None or (math.isfinite(v) and low <= v <= high)
    assert not kwargs.get("other_use_hours") or kwargs.get("runs_per_month") is not None


@FAST
@given(st.lists(st.sampled_from(["--spot", "--no-spot", "--packing", "--no-packing", "--on-demand", "--gpu", "x",
                                 "--", "--compile"]), max_size=6))
def test_a_switch_and_its_negation_are_always_caught_before_a_double_dash(argv):
    from planner.inputs.flags import contradictory_switches

    head = argv[:argv.index("--")] if "--" in argv else argv
    expected = (("--spot" in head and ("--no-spot" in head or "--on-demand" in head))
                or ("--packing" in head and "--no-packing" in head))
    assert (contradictory_switches(argv) is not None) == expected
