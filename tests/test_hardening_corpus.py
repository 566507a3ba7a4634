"""Regression corpus: every nasty input of issue 14 in the job spec, flags, model config, local profiles, price
caches, snapshots, SkyPilot catalogs and output paths ends in one line + exit 2 (or a warning and exit 0 for a
bad cache), never a traceback or a hang. Runs the real entry point (planner.cli.main) in-process."""
from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from planner.cli import main

MODEL = "meta-llama/Llama-3.1-8B"
LLAMA = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256}
BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
        + f"model: {MODEL}\nlora_targets: *i\n")


def run(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """planner.cli.main in-process: (exit code, stdout, stderr); fails the test if it runs past `timeout`."""
    out, err, result = io.StringIO(), io.StringIO(), {}

    def target() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                result["rc"] = 0
            except SystemExit as exc:
                result["rc"] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException as exc:  # noqa: BLE001 - any escape is the failure we look for
                result["rc"] = f"escaped {type(exc).__name__}: {exc}"

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"gpuplan {' '.join(a[:40] for a in args)} hung for {timeout} s"
    return result["rc"], out.getvalue(), err.getvalue()


def refused(*args: str, field: str | None = None) -> str:
    rc, _out, err = run(*args)
    assert rc == 2, f"exit {rc}: {err[-500:]}"
    assert "Traceback" not in err and "internal error" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert len(lines[0]) < 400, lines[0]
    if field is not None:
        assert field in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No user price caches or SkyPilot catalogs leak in; each test gets its own."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SKY_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("GPUPLAN_SNAPSHOT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ---------------------------------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag,value", [
    ("--lora-r", "9223372036854775808"), ("--lora-r", "99999999999"), ("--seq-len", "2147483648"),
    ("--epochs", "1e309"), ("--epochs", "nan"), ("--epochs", "inf"), ("--epochs", "-1"), ("--gpus", "1000"),
    ("--grad-accum", "10000000000"), ("--dataset-tokens", "1e30"), ("--batch-size", "0"),
])
def test_spec_flags_out_of_range_name_the_field_and_the_range(flag, value):
    line = refused("plan", "--model", MODEL, "--method", "lora", flag, value, "--gpu", "A100-80GB")
    field = flag[2:].replace("-", "_")
    assert field in line or flag in line
    assert any(w in line for w in ("range", "finite", "greater than 0", "whole number", "not a valid integer"))


@pytest.mark.parametrize("flag", ["--budget", "--deadline-hours", "--max-hourly", "--runs-per-month"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e300"])
def test_pricing_flags_must_be_finite_and_in_range(flag, value):
    line = refused("plan", "--model", MODEL, "--gpu", "A100-80GB", flag, value, field=flag)
    assert "range" in line or "finite" in line


@pytest.mark.parametrize("value", ["-1", "0", "100000"])
def test_top_must_be_a_sensible_row_count(value):
    refused("plan", "--model", MODEL, "--gpu", "A100-80GB", "--top", value, field="--top")


@pytest.mark.parametrize("model", ["a" * 300, "a/" + "b" * 300, "x" * 5000, "meta-llama/\tLlama-3.1-8B"])
def test_absurd_model_ids_are_refused_in_one_line(model):
    line = refused("plan", "--model", model, "--gpu", "A100-80GB", field="model")
    assert len(line) < 300


@pytest.mark.parametrize("combo,field", [
    (["--method", "full", "--lora-r", "8"], "lora_r"),
    (["--method", "full", "--lora-targets", "q_proj"], "lora_targets"),
    (["--method", "lora", "--double-quant"], "double_quant"),
    (["--parallel", "fsdp", "--gpus", "1"], "parallel"),
    (["--parallel", "zero3", "--gpus", "1"], "parallel"),
    (["--spot", "--no-spot"], "--spot and --no-spot"),
    (["--no-packing", "--packing"], "--no-packing and --packing"),
    (["--no-local", "--local-profile", "rtx4090-workstation"], "--no-local"),
    (["--no-local", "--provider", "local"], "--no-local"),
    (["--provider", "local", "--spot"], "--spot"),
    (["--other-use-hours", "100"], "--other-use-hours"),
    (["--attention", "flash", "--precision", "fp32", "--method", "full"], "attention"),
    (["--dataset-tokens", "1000000", "--dataset-examples", "1000", "--mean-example-tokens", "500"], "dataset_tokens"),
    (["--attention", "flash", "--gpu", "T4"], "attention"),
    (["--attention", "flash", "--gpu", "V100"], "attention"),
    (["--parallel", "zero3", "--gpus", "2", "--stack", "torchtune"], "parallel"),
])
def test_contradictory_options_are_refused_with_the_reason(combo, field):
    refused("plan", "--model", MODEL, "--gpu", "A100-80GB", *combo, field=field)


def test_fsdp_over_several_gpus_and_a_flag_switching_the_method_are_fine(tmp_path):
    rc, _out, err = run("plan", "--model", MODEL, "--gpu", "A100-80GB", "--parallel", "fsdp", "--gpus", "2",
                        "--no-local", "--format", "json")
    assert rc == 0, err
    # the file's LoRA settings do not contradict a --method full flag: the flag says which method runs
    rc, out, err = run("plan", "examples/llama3-8b-qlora.yaml", "--method", "full", "--gpu", "H100", "--no-local",
                       "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["job"]["method"] == "full"


# ---------------------------------------------------------------------------------------------------------------
# Job spec files
# ---------------------------------------------------------------------------------------------------------------
GOOD = f"model: {MODEL}\nmethod: qlora\n"
SPEC_CORPUS = {
    "bomb": (BOMB, "anchors"),
    "duplicate key": (GOOD + "seq_len: 1024\nseq_len: 4096\n", "seq_len"),
    "deep nesting": ("model: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    "binary": (bytes(range(256)) * 8, "UTF-8"),
    "latin-1": ("model: caf\xe9\n".encode("latin-1"), "UTF-8"),
    "list at the top": ("- a\n- b\n", "mapping"),
    "lora_targets an int": (GOOD + "lora_targets: 5\n", "lora_targets"),
    "lora_targets nested": (GOOD + "lora_targets: [[a, b]]\n", "lora_targets"),
    "gpus 1e30": (GOOD + "gpus: 1e30\n", "gpus"),
    "seq_len nan": (GOOD + "seq_len: .nan\n", "seq_len"),
    "epochs inf": (GOOD + "epochs: .inf\n", "epochs"),
    "learning_rate nan": (GOOD + "learning_rate: .nan\n", "learning_rate"),
    "learning_rate huge": (GOOD + "learning_rate: 1e300\n", "learning_rate"),
    "seq_len 2**31": (GOOD + "seq_len: 2147483648\n", "seq_len"),
    "grad_accum 1e30": (GOOD + "grad_accum: 1e30\n", "grad_accum"),
    "max_steps 1e30": (GOOD + "max_steps: 1e30\n", "max_steps"),
    "5000-digit number": (GOOD + "seq_len: 1" + "0" * 5000 + "\n", "job file"),
    "model a list": ("model: [a, b]\n", "model"),
    "data an int": (GOOD + "data: 5\n", "data"),
    "name of 200 kB": (GOOD + "name: " + "n" * 200_000 + "\n", "name"),
    "integer key": (GOOD + "5: 6\n", "job file"),
    "dropout nan": (GOOD + "lora_dropout: .nan\n", "lora_dropout"),
    "merge key": ("base: &b {method: lora}\n<<: *b\nmodel: x\n", "anchors"),
    "NUL in a value": ("model: a\x00b\n", "job file"),
    "impossible date": (GOOD + "name: 2024-99-99\n", "job file"),
}


@pytest.mark.parametrize("name", list(SPEC_CORPUS))
def test_bad_job_spec_files_end_in_one_line(tmp_path, name):
    text, field = SPEC_CORPUS[name]
    p = tmp_path / "job.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = refused("plan", str(p), "--gpu", "A100-80GB")
    assert field in line, line
    assert "lol" not in line  # the bomb's expansion is never printed


def test_a_50_mb_spec_is_refused_by_its_size_at_once(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "w") as fh:
        fh.write(f"model: {MODEL}\n")
        chunk = "".join(f"k{i}: {i}\n" for i in range(50_000))
        while fh.tell() < 50_000_000:
            fh.write(chunk)
    import time

    t = time.perf_counter()
    line = refused("plan", str(p))
    assert "MB" in line and time.perf_counter() - t < 5


def test_a_fifo_directory_or_device_as_job_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "job.yaml"
    os.mkfifo(fifo)
    assert "regular file" in refused("plan", str(fifo))
    (tmp_path / "dir.yaml").mkdir()
    assert "directory" in refused("plan", str(tmp_path / "dir.yaml"))
    assert "regular file" in refused("plan", "/dev/zero")


# ---------------------------------------------------------------------------------------------------------------
# Model config.json
# ---------------------------------------------------------------------------------------------------------------
def _cfg(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "m" / "config.json"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


@pytest.mark.parametrize("name,text", [
    ("vocab huge", json.dumps({**LLAMA, "vocab_size": 10 ** 30})),
    ("vocab NaN", json.dumps(LLAMA).replace("128256", "NaN")),
    ("vocab 1e400", json.dumps(LLAMA).replace("128256", "1e400")),
    ("vocab string", json.dumps({**LLAMA, "vocab_size": "abc"})),
    ("model_type a list", json.dumps({**LLAMA, "model_type": ["llama"]})),
    ("hidden 0", json.dumps({**LLAMA, "hidden_size": 0})),
    ("head_dim 0", json.dumps({**LLAMA, "head_dim": 0})),
    ("layers 1e12", json.dumps({**LLAMA, "num_hidden_layers": 10 ** 12})),
    ("deep", "[" * 100_000 + "]" * 100_000),
    ("duplicate key", json.dumps(LLAMA)[:-1] + ', "vocab_size": 5}'),
    ("binary", bytes(range(256)) * 4),
    ("tie maybe", json.dumps({**LLAMA, "tie_word_embeddings": "maybe"})),
])
def test_bad_model_configs_end_in_one_line_naming_the_model(tmp_path, name, text):
    refused("plan", "--model", _cfg(tmp_path, text), "--gpu", "A100-80GB", "--no-local", field="model")


def test_model_config_that_is_a_fifo_or_a_directory_is_refused(tmp_path):
    fifo = tmp_path / "fifo" / "config.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    refused("plan", "--model", str(fifo), "--gpu", "A100-80GB", field="model")
    (tmp_path / "d" / "config.json").mkdir(parents=True)
    refused("plan", "--model", str(tmp_path / "d"), "--gpu", "A100-80GB", field="model")


def test_config_strings_are_read_for_what_they_say(tmp_path):
    from planner.models import resolve_model

    assert resolve_model(_cfg(tmp_path, json.dumps({**LLAMA, "tie_word_embeddings": "no"}))).tie_embeddings is False
    assert resolve_model(_cfg(tmp_path, json.dumps({**LLAMA, "tie_word_embeddings": "true"}))).tie_embeddings is True
    arch = resolve_model(_cfg(tmp_path, json.dumps({**LLAMA, "_name_or_path": ["a", "b"]})))
    assert arch.hf_id is None and arch.vocab_size == 128256


# ---------------------------------------------------------------------------------------------------------------
# Local profiles
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text", [
    ("binary", bytes(range(256)) * 4),
    ("a list", "- a\n- b\n"),
    ("base a list", "base: [a]\n"),
    ("sources a list", "base: rtx4090-workstation\nsources: [a, b]\n"),
    ("gpu_count inf", "base: rtx4090-workstation\ngpu_count: .inf\n"),
    ("price nan", "base: rtx4090-workstation\npurchase_price_usd: .nan\n"),
    ("name a list", "base: rtx4090-workstation\nname: [a]\n"),
    ("workload a list", "base: rtx4090-workstation\nworkload: [1]\n"),
    ("runs inf", "base: rtx4090-workstation\nruns_per_month: .inf\njob_hours: 1\n"),
    ("bomb", BOMB.replace(f"model: {MODEL}\nlora_targets", "sources")),
    ("duplicate key", "base: rtx4090-workstation\npue: 1.2\npue: 1.5\n"),
    ("integer key", "base: rtx4090-workstation\n5: 1\n"),
    ("5000-digit number", "base: rtx4090-workstation\npue: 1" + "0" * 5000 + "\n"),
    ("impossible date", "base: rtx4090-workstation\nname: 2024-99-99\n"),
])
def test_bad_local_profiles_end_in_one_line(tmp_path, name, text):
    p = tmp_path / "profile.yaml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused("plan", "--model", MODEL, "--gpu", "RTX4090", "--local-profile", str(p), field="local_profile")


def test_local_profile_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    refused("plan", "--model", MODEL, "--gpu", "RTX4090", "--local-profile", str(fifo), field="local_profile")


# ---------------------------------------------------------------------------------------------------------------
# Price caches and snapshots
# ---------------------------------------------------------------------------------------------------------------
ROW = ["aws", "p4d.24xlarge", "us-east-1", None, "A100", 8, 40, 96, 1152, 32.77, 10.0, "live aws", "2099-01-01", []]
COLS = ["provider", "instance_type", "region", "zone", "gpu", "gpu_count", "gpu_memory_gib", "vcpus", "ram_gib",
        "usd_per_hour", "spot_usd_per_hour", "source", "as_of", "notes"]


def offers_doc(rows=None, **top) -> dict:
    doc = {"format": "gpuplan-offers/1", "built_at": "2099-01-01T00:00:00Z",
           "providers": {"aws": {"source": "live aws", "as_of": "2099-01-01"}}, "columns": COLS,
           "offers": [ROW] if rows is None else rows, "dropped": [], "warnings": []}
    doc.update(top)
    return doc


def with_col(i: int, v) -> str:
    r = list(ROW)
    r[i] = v
    return json.dumps(offers_doc([r]), allow_nan=True)


BAD_OFFERS = {
    "providers a list": json.dumps(offers_doc(providers=["aws"])),
    "offers null": json.dumps(offers_doc(offers=None)),
    "columns null": json.dumps(offers_doc(columns=None)),
    "row null": json.dumps(offers_doc([None])),
    "gpu_count 0": with_col(5, 0),
    "gpu_count a string": with_col(5, "abc"),
    "gpu_count 1e400": with_col(5, 1).replace('"A100", 1,', '"A100", 1e400,'),
    "price a string": with_col(9, "cheap"),
    "price NaN": with_col(9, float("nan")),
    "price 1e400": with_col(9, 1.5).replace("1.5", "1e400"),
    "unknown GPU": with_col(4, "TPU-v9"),
    "notes a string": with_col(13, "x"),
    "200 kB instance": with_col(1, "i" * 200_000),
    "deep": "[" * 100_000 + "]" * 100_000,
    "truncated": json.dumps(offers_doc())[:150],
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", list(BAD_OFFERS))
@pytest.mark.parametrize("command", [("prices", "--format", "json"), ("prices", "--provider", "aws"),
                                     ("plan", "--model", MODEL, "--gpu", "A100", "--no-local", "--format", "json")])
def test_a_bad_live_cache_is_skipped_with_a_warning_on_every_command(tmp_path, name, command):
    text = BAD_OFFERS[name]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "aws.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    rc, out, err = run(*command)
    assert rc == 0, err
    assert "Traceback" not in err and "warning:" in err and "aws.json" in err
    if "json" in command:
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_cache_that_is_not_a_file_is_skipped_with_a_warning(tmp_path, kind):
    cache = tmp_path / "cache"
    cache.mkdir()
    if kind == "fifo":
        os.mkfifo(cache / "aws.json")
    else:
        (cache / "aws.json").mkdir()
    rc, out, err = run("prices", "--provider", "aws", "--format", "json")
    assert rc == 0 and "not a regular file" in err and json.loads(out)


@pytest.mark.parametrize("name", ["providers a list", "price NaN", "deep", "binary", "row null"])
def test_a_bad_snapshot_is_skipped_with_a_warning(tmp_path, monkeypatch, name):
    text = BAD_OFFERS[name]
    snap = tmp_path / "snap.json"
    snap.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setenv("GPUPLAN_SNAPSHOT", str(snap))
    rc, out, err = run("prices", "--format", "json")
    assert rc == 0 and "warning:" in err and "snap.json" in err
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))


# ---------------------------------------------------------------------------------------------------------------
# SkyPilot catalogs (the user's cache and build-snapshot --from)
# ---------------------------------------------------------------------------------------------------------------
AWS_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
              "AvailabilityZone,Arch\n")
AWS_ROW = "p4d.24xlarge,A100,8,96,1152,,32.77,10.0,us-east-1,us-east-1a,x86_64\n"
CATALOGS = {
    "200 kB field": AWS_HEADER + AWS_ROW.replace("p4d.24xlarge", "p" * 200_000),
    "inf GPU count": AWS_HEADER + AWS_ROW.replace(",8,", ",inf,"),
    "1e30 GPU count": AWS_HEADER + AWS_ROW.replace(",8,", ",1e30,"),
    "inf price": AWS_HEADER + AWS_ROW.replace("32.77", "inf"),
    "inf spot": AWS_HEADER + AWS_ROW.replace("10.0", "inf"),
    "non-UTF-8": (AWS_HEADER + AWS_ROW.replace("us-east-1a", "us-east-1\xe9")).encode("latin-1"),
    "binary": bytes(range(256)) * 16,
    "short rows": AWS_HEADER + "a,b\n",
}


def _sky(tmp_path: Path, content) -> Path:
    csv_path = tmp_path / "home" / ".sky" / "catalogs" / "v8" / "aws" / "vms.csv"
    csv_path.parent.mkdir(parents=True)
    if content == "dir":
        csv_path.mkdir()
    elif content == "fifo":
        os.mkfifo(csv_path)
    else:
        csv_path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return csv_path


@pytest.mark.parametrize("name", list(CATALOGS) + ["dir", "fifo"])
def test_a_bad_skypilot_catalog_never_crashes_prices(tmp_path, name):
    _sky(tmp_path, CATALOGS.get(name, name))
    for args in (("prices", "--format", "json"), ("prices", "--provider", "aws", "--format", "json")):
        rc, out, err = run(*args)
        assert rc == 0, err
        rows = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON output"))
        assert all(r["usd_per_hour"] is None or r["usd_per_hour"] < 1e6 for r in rows)


@pytest.mark.parametrize("name", ["non-UTF-8", "binary", "dir", "fifo"])
def test_build_snapshot_names_the_unreadable_catalog(tmp_path, name):
    csv_path = _sky(tmp_path, CATALOGS.get(name, name))
    refused("prices", "build-snapshot", "--from", str(csv_path.parents[2]), "-o", str(tmp_path / "o.json"),
            field="catalog")


# ---------------------------------------------------------------------------------------------------------------
# Output paths
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def catalogs(catalogs_dir):
    return str(catalogs_dir)


def test_build_snapshot_only_replaces_regular_files(tmp_path, catalogs):
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "dir.json").mkdir()
    for target, words in [("", "empty"), (str(tmp_path / "dir.json"), "directory"),
                          (str(tmp_path / "file" / "o.json"), "file"), (str(tmp_path / "fifo.json"), "regular file")]:
        line = refused("prices", "build-snapshot", "--from", catalogs, "-o", target, field="--output")
        assert words in line
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo.json").st_mode)  # untouched


def test_a_character_device_is_never_replaced(tmp_path):
    """-o /dev/null run as root would have swapped the system's null device for a regular file. Checked on a
    private device node (never the real /dev/null: a regression must not break the machine)."""
    from pricing.cache import check_output_file, write_atomic
    from pricing.errors import PricingInputError

    with pytest.raises(PricingInputError, match="regular file"):
        check_output_file("/dev/null")  # stat only: nothing is written
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(PricingInputError, match="regular file"):
        write_atomic(node, "x")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_plan_report_folder_under_a_file_or_empty_is_refused_before_planning(tmp_path):
    (tmp_path / "file").write_text("x")
    refused("plan", "--model", MODEL, "--gpu", "A100-80GB", "--report", str(tmp_path / "file" / "r"),
            field="--report")
    refused("plan", "--model", MODEL, "--gpu", "A100-80GB", "--report", "", field="--report")


# ---------------------------------------------------------------------------------------------------------------
# Exit codes and extras
# ---------------------------------------------------------------------------------------------------------------
def test_ctrl_c_exits_130(monkeypatch):
    import planner.plan

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(planner.plan, "plan_job", interrupted)
    rc, _out, err = run("plan", "--model", MODEL, "--gpu", "A100-80GB")
    assert rc == 130 and "interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize("module,extra", [("jinja2", "report"), ("weasyprint", "report"), ("sky", "launch"),
                                          ("torch", "train"), ("boto3", "aws"), ("google.cloud.billing", "gcp")])
def test_a_missing_extra_says_which_to_install(monkeypatch, module, extra):
    import planner.plan

    def missing(*_a, **_k):
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    monkeypatch.setattr(planner.plan, "plan_job", missing)
    line = refused("plan", "--model", MODEL, "--gpu", "A100-80GB")
    assert f"pip install 'gpuplan[{extra}]'" in line


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch):
    import planner.plan

    def bug(*_a, **_k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(planner.plan, "plan_job", bug)
    rc, _out, err = run("plan", "--model", MODEL, "--gpu", "A100-80GB")
    assert rc == 1 and "internal error (ZeroDivisionError" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------------
# Narrow terminals
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [100, 120])
def test_prices_table_at_100_columns_never_cuts_provider_instance_or_region(width):
    from rich.console import Console

    from planner.cli.prices import _rows, _table
    from pricing.catalog import load_offers

    rows = _rows(load_offers(user_caches=False).offers)
    buf = io.StringIO()
    _table(rows, console=Console(width=width, file=buf, force_terminal=False, color_system=None))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in buf.getvalue()
    body = buf.getvalue()
    for r in rows:
        assert r["instance_type"] in body and r["region"] in body and r["provider"] in body
    assert all(h in lines[0] for h in ("GPU", "provider", "instance type", "region", "$/h", "spot $/h", "$/GPU-h"))


def test_prices_table_at_80_columns_folds_instance_names_and_keeps_every_price():
    from rich.console import Console

    from planner.cli.prices import _rows, _table
    from pricing.catalog import load_offers

    rows = _rows(load_offers(user_caches=False).offers)
    buf = io.StringIO()
    _table(rows, console=Console(width=80, file=buf, force_terminal=False, color_system=None))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in buf.getvalue()
    assert all(h in lines[0] for h in ("GPU", "provider", "$/h", "spot $/h", "$/GPU-h"))
    for r in rows[:50]:  # prices are never cut: each row's on-demand price is printed in full
        assert f"{r['usd_per_hour']:.2f}" in buf.getvalue()


def test_every_extra_named_in_an_install_hint_exists_in_pyproject(repo):
    import tomllib

    from planner.inputs.extras import MODULE_EXTRAS, install_hint

    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(MODULE_EXTRAS.values()) <= set(extras)
    assert install_hint("pandas") == "pandas is not installed; install it with: pip install 'gpuplan[report]'"
    assert install_hint("numpy_not_ours") is None


def test_a_trainer_spec_with_runaway_numbers_is_refused_before_any_work(tmp_path):
    """`python -m train` reads the same loader: grad_accum/max_steps 1e30 and seq_len 2**31 never start a run."""
    from train.spec import SpecError, load_spec

    for line in ("grad_accum: 1e30", "max_steps: 1e30", "seq_len: 2147483648", "learning_rate: .nan"):
        p = tmp_path / "job.yaml"
        p.write_text(f"model: smoke-llama\n{line}\n")
        with pytest.raises(SpecError, match=line.split(":")[0]):
            load_spec(p)
