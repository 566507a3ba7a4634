"""Whatever mapping a user hands the importers, the answer is a job or one line naming the key and the fix:
never a traceback, never a silent drop."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.imports import detect_format
from planner.imports.load import job_from_mapping
from planner.imports import axolotl, llama_factory, torchtune, trl
from train.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
KNOWN = sorted(set(axolotl.MARKERS) | set(llama_factory.MARKERS) | set(trl.MARKERS) | set(torchtune.MARKERS) | {
    "model", "optimizer", "lora_r", "lora_alpha", "lora_dropout", "gradient_checkpointing", "bf16", "fp16",
    "deepspeed", "fsdp", "fsdp_config", "optim", "model_name_or_path", "base_model", "batch_size", "epochs",
    "dtype", "compile", "peft_config", "quantization_config", "packing", "max_steps", "learning_rate"})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["auto", "bf16", "qlora", "lora", "full", "all",
                                                           "torchtune.models.llama3_1.lora_llama3_1_8b",
                                                           "meta-llama/Llama-3.1-8B", "zero3.json", "4", "sft"]))
keys = st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=12)
configs = st.dictionaries(keys, values, max_size=14)


def one_line_or_job(raw, fmt):
    try:
        spec, report = job_from_mapping(raw, fmt, require_model=False)
    except SpecError as exc:
        line = exc.one_line()
        assert line and "\n" not in line
        return None
    # a job: every key is accounted for (mapped, ignored with its reason, or checked)
    named = {m.key for m in report.mapped} | {i.key for i in report.ignored} | set(report.checked)
    for k in raw:
        k = str(k)
        assert any(n == k or n.startswith(k + ".") or n.startswith(k + "[") or n.startswith(k + ":")
                   for n in named) or raw[k] in (None, "", [], {}, False), k
    assert math.isfinite(spec.epochs) and spec.seq_len > 0
    return spec


@settings(max_examples=80, deadline=None)
@given(raw=configs, fmt=st.sampled_from(["axolotl", "llama-factory", "trl", "torchtune"]))
def test_any_mapping_imports_or_fails_in_one_line(raw, fmt):
    one_line_or_job(raw, fmt)


@settings(max_examples=80, deadline=None)
@given(raw=st.one_of(configs, values))
def test_detection_names_a_format_or_says_in_one_line_what_it_saw(raw):
    try:
        fmt, evidence = detect_format(raw)
    except SpecError as exc:
        assert "\n" not in exc.one_line()
        return
    assert fmt in ("gpuplan", "axolotl", "llama-factory", "trl", "torchtune") and evidence


def test_a_garbage_file_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for i, text in enumerate(["base_model: [1, 2\n", "- just\n- a list\n", "\x00\x01binary", "adapter: qlora\n",
                              "model: {_component_: torchtune.models.nope.lora_nope_1b}\nbatch_size: 1\nepochs: 1\n"
                              "tokenizer: {max_seq_len: 512}\n"]):
        path = tmp_path / f"g{i}.yaml"
        path.write_text(text)
        r = subprocess.run([sys.executable, "-m", "planner.cli", "plan", str(path), "--gpu", "L4"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2, (text, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


@settings(max_examples=60, deadline=None)
@given(raw=st.one_of(configs, values))
def test_any_file_loads_as_a_job_or_fails_in_one_line(raw, tmp_path_factory):
    import yaml

    from planner.imports import load_job

    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    try:
        path.write_text(yaml.safe_dump(raw))
    except yaml.YAMLError:
        return
    try:
        load_job(str(path), require_model=False)
    except SpecError as exc:
        assert "\n" not in exc.one_line()
