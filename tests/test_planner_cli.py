"""`gpuplan plan` as a user's script sees it: the JSON contract, output formats, exit codes."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRACT = ["--model", "meta-llama/Llama-3.1-8B", "--method", "qlora", "--lora-r", "64", "--lora-targets",
            "all-linear", "--seq-len", "2048", "--batch-size", "1", "--grad-accum", "1", "--gradient-checkpointing",
            "--optimizer", "adamw", "--precision", "bf16", "--attention", "sdpa", "--gpu", "RTX3090", "--gpus", "2",
            "--parallel", "fsdp", "--format", "json"]


def gpuplan(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_the_contract_command_prints_every_promised_key():
    r = gpuplan("plan", *CONTRACT, "--dataset-tokens", "20000000")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d["memory"]) >= {"peak_allocated_gib", "peak_reserved_gib", "breakdown_gib"}
    assert set(d["memory"]["breakdown_gib"]) == {"weights", "adapter", "gradients", "optimizer", "activations",
                                                 "logits", "overhead"}
    assert d["throughput"]["tokens_per_s"] > 0 and 0 < d["throughput"]["mfu"] < 1
    assert d["time"]["hours"] > 0
    assert d["limits"]["max_batch_size"] >= 1 and d["limits"]["max_seq_len"] >= 2048
    assert isinstance(d["fits"], bool) and isinstance(d["suggestions"], list)
    assert d["gpu"] == "RTX3090" and d["gpus"] == 2
    # the price comparison rides along
    assert d["options"] and {"target", "provider", "instance_type", "region", "gpu", "gpus", "spot", "usd_per_hour",
                             "hours", "cost_usd", "fits"} <= set(d["options"][0])
    assert d["recommendation"]["reason"]
    assert {"source", "as_of"} <= set(next(iter(d["prices"].values())))


def test_the_breakdown_adds_up_to_the_peak_and_the_tokens_add_up_to_the_time():
    d = json.loads(gpuplan("plan", *CONTRACT, "--dataset-tokens", "20000000").stdout)
    assert sum(d["memory"]["breakdown_gib"].values()) == pytest.approx(d["memory"]["peak_allocated_gib"], abs=0.01)
    assert d["time"]["hours"] == pytest.approx(20_000_000 / d["throughput"]["tokens_per_s"] / 3600, rel=1e-3)


def test_without_a_gpu_every_type_is_evaluated_at_1_2_4_and_8():
    r = gpuplan("plan", "examples/llama3-8b-qlora.yaml", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    pairs = {(p["gpu"], p["gpus"]) for p in d["gpus"]}
    for gpu in ("T4", "A100", "A100-80GB", "H100", "H200", "B200", "RTX4090", "L40S", "MI300X"):
        assert {(gpu, n) for n in (1, 2, 4, 8)} <= pairs
    for p in d["gpus"]:
        assert {"memory", "throughput", "time", "limits", "fits", "suggestions"} <= set(p)


def test_flags_override_the_job_file():
    d = json.loads(gpuplan("plan", "examples/llama3-8b-qlora.yaml", "--gpu", "A100", "--seq-len", "1024",
                           "--format", "json").stdout)
    assert d["job"]["seq_len"] == 1024 and d["job"]["method"] == "qlora" and d["gpu"] == "A100"


def test_no_gradient_checkpointing_costs_memory_and_gains_speed():
    on = json.loads(gpuplan("plan", *CONTRACT).stdout)
    # --gradient-checkpointing and --no-gradient-checkpointing together are refused as a contradiction
    without = [a for a in CONTRACT if a != "--gradient-checkpointing"]
    off = json.loads(gpuplan("plan", *without, "--no-gradient-checkpointing").stdout)
    assert off["memory"]["peak_allocated_gib"] > on["memory"]["peak_allocated_gib"]
    assert off["throughput"]["tokens_per_s"] > on["throughput"]["tokens_per_s"]


def test_csv_has_one_row_per_gpu_type_and_count():
    r = gpuplan("plan", "examples/mistral-7b-lora.yaml", "--format", "csv", "--no-local")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 17 * 4
    assert {"gpu", "gpus", "fits", "peak_reserved_gib", "tokens_per_s", "hours"} <= set(rows[0])


def test_the_table_names_the_recommendation():
    r = gpuplan("plan", "examples/llama3-8b-qlora.yaml")
    assert r.returncode == 0
    assert "Recommendation:" in r.stdout and "H100" in r.stdout


def test_a_config_json_path_works_as_the_model(tmp_path):
    cfg = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True,
           "max_position_embeddings": 131072}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = gpuplan("plan", "--model", str(tmp_path / "config.json"), "--gpu", "T4", "--format", "json", "--no-local")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"]["params_total"] == 1_235_814_400  # Llama-3.2-1B


BAD = [
    (["--model", "nonexistent/model-xyz", "--gpu", "H100"], "model"),
    (["--model", "meta-llama/Llama-3.1-8B", "--gpu", "H1000"], "gpu"),
    (["--model", "meta-llama/Llama-3.1-8B", "--seq-len", "0"], "seq_len"),
    (["--model", "meta-llama/Llama-3.1-8B", "--batch-size", "-2"], "batch_size"),
    (["--model", "meta-llama/Llama-3.1-8B", "--gpus", "0"], "gpus"),
    (["--model", "meta-llama/Llama-3.1-8B", "--method", "dora"], "method"),
    (["--model", "meta-llama/Llama-3.1-8B", "--seq-len", "abc"], "--seq-len"),
    (["--model", "meta-llama/Llama-3.1-8B", "--lora-targets", "q_proj,nope_proj"], "lora_targets"),
    (["--model", "meta-llama/Llama-3.1-8B", "--budget", "-5"], "budget"),
    (["missing-job.yaml"], "job file"),
]


@pytest.mark.parametrize("args,field", BAD, ids=[b[1] for b in BAD])
def test_bad_input_exits_2_with_one_line_naming_the_field(args, field):
    r = gpuplan("plan", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert field in lines[0] and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_bad_yaml_unknown_field_and_incomplete_config_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("model: meta-llama/Llama-3.1-8B\nsequence_len: 2048\n")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 4}))
    cases = [(["plan", str(tmp_path / "bad.yaml")], "not valid YAML"),
             (["plan", str(tmp_path / "unknown.yaml")], "sequence_len"),
             (["plan", "--model", str(tmp_path / "config.json")], "hidden_size")]
    for args, needle in cases:
        r = gpuplan(*args)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_the_plan_path_imports_no_heavy_library():
    code = ("import sys, io, contextlib\nfrom planner.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['plan', 'examples/llama3-8b-qlora.yaml'])\n    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'sky', 'pandas', 'numpy', 'boto3', 'transformers', 'google.cloud', "
            "'huggingface_hub', 'launch') if m in sys.modules]\nprint(heavy)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_runs_per_month_derives_local_utilisation_from_the_jobs_own_hours():
    r = gpuplan("plan", "examples/llama3-8b-qlora.yaml", "--local-profile", "l40s-server", "--runs-per-month", "20",
                "--other-use-hours", "100", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    (profile,) = d["local_profiles"]
    # the local machine runs the configuration the plan tuned for it (same global batch): its training hours
    local = next(o for o in d["options"] if o["target"] == "local")
    expected = (20 * local["hours"] + 100) / 730
    assert profile["utilisation"] == pytest.approx(expected, abs=1e-3)
    assert any("derived: 20 runs/month" in a["source"] for a in profile["assumptions"])
