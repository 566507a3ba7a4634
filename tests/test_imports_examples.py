"""Each shipped example of another tool's config imports to the job a person would write by hand, and plans the
same; every key is mapped or reported with its reason; the CLI commands accept the configs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from planner.imports import detect_format, load_job
from planner.plan import plan_job
from train.spec import SpecError, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
EX = REPO / "examples" / "imports"

# The job spec a person would write by hand for each example (the tool's defaults spelled out).
HAND_WRITTEN = {
    "axolotl-llama3-8b-qlora.yml": dict(
        model="meta-llama/Meta-Llama-3-8B", method="qlora", lora_r=32, lora_alpha=16, lora_dropout=0.05,
        lora_targets="all-linear", double_quant=True, seq_len=4096, packing=True, batch_size=2, grad_accum=4,
        epochs=1, optimizer="paged-adamw-8bit", learning_rate=2e-4, lr_scheduler="cosine", weight_decay=0.0,
        gradient_checkpointing=True, precision="bf16", attention="flash", chunked_loss=False, parallel="ddp",
        stack="axolotl", output_dir="./outputs/qlora-out", logging_steps=1),
    "llama-factory-qwen2.5-7b-lora.yaml": dict(
        model="Qwen/Qwen2.5-7B-Instruct", method="lora", lora_r=16, lora_alpha=32, lora_dropout=0.0,
        lora_targets="all-linear", seq_len=2048, packing=False, batch_size=2, grad_accum=8, epochs=3,
        optimizer="adamw", learning_rate=1e-4, lr_scheduler="cosine", warmup_ratio=0.1,
        gradient_checkpointing=True, precision="bf16", attention="flash", chunked_loss=True, parallel="zero3",
        stack="llama-factory", output_dir="saves/qwen2.5-7b/lora/sft", logging_steps=10, save_steps=500),
    "trl-sft-mistral-7b-qlora.yaml": dict(
        model="mistralai/Mistral-7B-v0.3", method="qlora", lora_r=64, lora_alpha=16, lora_dropout=0.1,
        lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        double_quant=True, seq_len=2048, packing=False, batch_size=4, grad_accum=4, epochs=1,
        optimizer="paged-adamw-8bit", learning_rate=2e-4, lr_scheduler="cosine", warmup_ratio=0.03,
        gradient_checkpointing=True, precision="bf16", attention="flash", chunked_loss=True, parallel="ddp",
        stack="trl", output_dir="mistral-7b-qlora-sft", logging_steps=25, save_steps=500, seed=42),
    "torchtune-llama3_1-8B_qlora_single_device.yaml": dict(
        model="meta-llama/Llama-3.1-8B", method="qlora", lora_r=8, lora_alpha=16, lora_dropout=0.0,
        lora_targets=["q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], double_quant=True,
        seq_len=2048, packing=False, batch_size=2, grad_accum=8, epochs=1, optimizer="adamw", learning_rate=3e-4,
        weight_decay=0.01, lr_scheduler="cosine", gradient_checkpointing=True, precision="bf16", attention="sdpa",
        chunked_loss=True, parallel="ddp", stack="torchtune", output_dir="/tmp/torchtune/llama3_1_8B/qlora_single_device"),
}
FORMAT_OF = {"axolotl-llama3-8b-qlora.yml": "axolotl", "llama-factory-qwen2.5-7b-lora.yaml": "llama-factory",
             "trl-sft-mistral-7b-qlora.yaml": "trl", "torchtune-llama3_1-8B_qlora_single_device.yaml": "torchtune"}
PLANNED = ("model", "method", "lora_r", "lora_alpha", "lora_dropout", "double_quant", "seq_len", "batch_size",
           "grad_accum", "gradient_checkpointing", "optimizer", "precision", "attention", "packing", "chunked_loss",
           "compile", "stack", "epochs", "gpus", "nodes", "parallel", "learning_rate", "lr_scheduler",
           "warmup_ratio", "weight_decay", "output_dir", "logging_steps", "save_steps")


def test_there_is_one_example_per_format():
    assert sorted(p.name for p in EX.iterdir()) == sorted(HAND_WRITTEN)
    assert sorted(FORMAT_OF.values()) == ["axolotl", "llama-factory", "torchtune", "trl"]


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_each_example_is_detected_as_its_tool_and_sets_the_stack(name):
    raw = yaml.safe_load((EX / name).read_text())
    fmt, evidence = detect_format(raw)
    assert fmt == FORMAT_OF[name] and evidence
    spec, report = load_job(str(EX / name))
    assert report.format == fmt and spec.stack == report.stack == HAND_WRITTEN[name]["stack"]


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_each_example_imports_as_the_hand_written_job_and_plans_the_same(name):
    spec, _ = load_job(str(EX / name), {"gpu": "A100-80GB", "dataset_tokens": 10_000_000})
    hand = spec_from_dict({**HAND_WRITTEN[name], "gpu": "A100-80GB", "dataset_tokens": 10_000_000})
    for f in PLANNED:
        if f == "model":
            continue  # the example may name a mirror; the plan resolves it to the same registry entry
        assert getattr(spec, f) == getattr(hand, f), f
    a, b = plan_job(spec, compare=False), plan_job(hand, compare=False)
    assert a["model"]["hf_id"] == b["model"]["hf_id"]
    assert a["model"]["params_trainable"] == b["model"]["params_trainable"] > 0
    for section in ("memory", "throughput", "time", "fits"):
        assert a[section] == b[section], section


def leaves(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict) and v:
            yield from leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_every_key_of_each_example_is_mapped_ignored_with_a_reason_or_checked(name):
    raw = yaml.safe_load((EX / name).read_text())
    _, report = load_job(str(EX / name))
    named = ({m.key for m in report.mapped} | {i.key for i in report.ignored} | set(report.checked))
    for key, value in leaves(raw):
        parts = key.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        hit = prefixes & named or any(n.startswith(key + "[") for n in named)
        assert hit or value in (None, "", [], False), key
    assert all(i.reason for i in report.ignored)


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_an_unknown_key_is_reported_never_dropped(name, tmp_path):
    text = (EX / name).read_text() + "\nsome_new_knob_v9: 7\n"
    path = tmp_path / name
    path.write_text(text)
    _, report = load_job(str(path))
    hit = [i for i in report.ignored if i.key == "some_new_knob_v9"]
    assert hit and "importer" in hit[0].reason


def gpuplan(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1", "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1", "COLUMNS": "150"}
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_plan_json_carries_the_import_report_and_names_the_registry_entry_of_a_mirror():
    r = gpuplan("plan", str(EX / "axolotl-llama3-8b-qlora.yml"), "--gpu", "L4", "--format", "json", "--no-local")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    imp = doc["import"]
    assert imp["format"] == "axolotl" and imp["stack"] == "axolotl" and doc["job"]["stack"] == "axolotl"
    assert {"key": "sequence_len", "field": "seq_len", "value": 4096} in imp["mapped"]
    assert any(i["key"] == "wandb_project" and "tracking" in i["reason"] for i in imp["ignored"])
    assert [m["field"] for m in imp["missing"]] == ["dataset_tokens"]
    assert "--dataset-tokens" in r.stderr
    assert doc["model"]["hf_id"] == "meta-llama/Meta-Llama-3-8B"
    assert "meta-llama/Meta-Llama-3-8B" in doc["model"]["source"] and "mirror" in doc["model"]["source"]


def test_the_table_shows_one_line_about_the_import_and_flags_fill_what_is_missing():
    r = gpuplan("plan", str(EX / "torchtune-llama3_1-8B_qlora_single_device.yaml"), "--gpu", "A100-80GB",
                "--dataset-tokens", "10000000", "--no-local")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("imported torchtune config") and "ignored" in first
    assert "dataset_tokens missing" not in r.stderr


def test_config_format_forces_a_format_and_a_wrong_one_fails_in_one_line(tmp_path):
    r = gpuplan("plan", str(EX / "trl-sft-mistral-7b-qlora.yaml"), "--config-format", "trl", "--gpu", "L4",
                "--format", "json", "--no-local")
    assert r.returncode == 0, r.stderr and json.loads(r.stdout)["import"]["detected_by"] == ["--config-format"]
    r = gpuplan("plan", str(EX / "trl-sft-mistral-7b-qlora.yaml"), "--config-format", "torchtune", "--gpu", "L4")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_an_unrecognised_config_is_one_line_naming_what_was_seen(tmp_path):
    bad = tmp_path / "mystery.yaml"
    bad.write_text("foo: 1\nbar_baz: [1, 2]\nqux: {a: b}\n")
    r = gpuplan("plan", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert "unrecognised format" in line and "foo" in line and "--config-format" in line


def test_a_torchtune_config_without_a_sequence_length_names_the_key_and_the_flag(tmp_path):
    text = (EX / "torchtune-llama3_1-8B_qlora_single_device.yaml").read_text().replace("max_seq_len: 2048",
                                                                                      "max_seq_len: null")
    path = tmp_path / "tt.yaml"
    path.write_text(text)
    r = gpuplan("plan", str(path), "--gpu", "L4")
    assert r.returncode == 2
    line, = r.stderr.strip().splitlines()
    assert "tokenizer.max_seq_len" in line and "--seq-len" in line
    spec, _ = load_job(str(path), {"seq_len": 1024})
    assert spec.seq_len == 1024


@pytest.mark.slow
def test_report_and_launch_dry_run_accept_a_foreign_config(tmp_path):
    cfg = EX / "llama-factory-qwen2.5-7b-lora.yaml"
    r = gpuplan("report", str(cfg), "--dataset-tokens", "30000000", "--gpus", "4", "--no-local", "-o",
                str(tmp_path / "rep"), "--provider", "gcp")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["import"]["format"] == "llama-factory" and doc["job"]["parallel"] == "zero3"
    env_home = tmp_path / "home"
    env_home.mkdir()
    r = subprocess.run([sys.executable, "-m", "planner.cli", "launch", str(cfg), "--target", "cloud", "--provider",
                        "gcp", "--on-demand", "--gpus", "4", "--set", "dataset_tokens=30000000", "--dry-run"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=180,
                       env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(env_home),
                            "GPUPLAN_HOME": str(tmp_path / "g"), "HF_HUB_OFFLINE": "1",
                            "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"})
    assert r.returncode == 0, r.stderr
    assert "from:  imported LLaMA-Factory" in r.stdout or "from:  imported llama-factory" in r.stdout
    assert "dry run: nothing started" in r.stdout


def test_a_gpuplan_job_spec_still_loads_as_before():
    spec, report = load_job(str(REPO / "examples" / "llama3-8b-qlora.yaml"))
    assert report is None and spec.stack == "gpuplan" and spec.seq_len == 2048


def test_bad_values_name_the_tools_own_key(tmp_path):
    path = tmp_path / "ax.yml"
    path.write_text("base_model: NousResearch/Meta-Llama-3-8B\nadapter: lora\nsequence_len: lots\n")
    with pytest.raises(SpecError) as e:
        load_job(str(path))
    assert e.value.field.startswith("sequence_len (axolotl")
    path.write_text("base_model: NousResearch/Meta-Llama-3-8B\nadapter: lora\nmicro_batch_size: -2\n")
    with pytest.raises(SpecError) as e:
        load_job(str(path))
    assert "micro_batch_size" in e.value.field and "batch_size" in e.value.field
