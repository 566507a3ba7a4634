"""Torch-light unit checks of the training package: data formatting, packing, checkpoints, torchrun command."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from train import checkpoint as ckpt
from train.data import IGNORE, build_examples, epoch_batches, pack_rows, read_records, Example
from train.distributed import torchrun_command, torchrun_shell_command
from train.optim import lr_factor
from train.spec import DataSpec, SpecError


@pytest.fixture(scope="module")
def tokenizer():
    from train.smoke import build_smoke_tokenizer

    return build_smoke_tokenizer()


def _decode_labels(tok, ex: Example) -> str:
    return tok.decode([t for t in ex.labels if t != IGNORE])


def test_chat_and_instruction_records_train_on_the_answer_only(tokenizer):
    rows = [{"messages": [{"role": "user", "content": "What is 2 plus 2?"},
                          {"role": "assistant", "content": "2 plus 2 is 4."}]},
            {"instruction": "Reverse the word cat.", "output": "cat reversed is tac."}]
    chat, inst = build_examples(rows, DataSpec(path="x.jsonl"), tokenizer, seq_len=512)
    # labels are next-token targets: the answer, its end-of-turn token and the trailing newline of the template
    assert _decode_labels(tokenizer, chat).startswith("2 plus 2 is 4.<|eos|>")
    assert "What is" not in _decode_labels(tokenizer, chat)
    assert _decode_labels(tokenizer, inst).startswith("cat reversed is tac.<|eos|>")
    assert len(chat.input_ids) == len(chat.labels)


def test_text_records_train_on_every_token_and_are_truncated(tokenizer):
    (ex,) = build_examples([{"text": "hello world"}], DataSpec(path="x.jsonl", format="text"), tokenizer, seq_len=6)
    assert len(ex.input_ids) == 6
    assert ex.n_label_tokens == 5  # every next token inside the window


def test_packing_restarts_positions_per_example():
    exs = [Example([1, 2, 3], [2, 3, IGNORE]), Example([4, 5], [5, IGNORE]), Example([6, 7, 8, 9], [7, 8, 9, IGNORE])]
    rows = pack_rows(exs, seq_len=6, pad_id=0)
    assert len(rows) == 2
    assert rows[0].input_ids[0] == [1, 2, 3, 4, 5, 0]
    assert rows[0].position_ids[0] == [0, 1, 2, 0, 1, 0]
    assert rows[0].attention_mask is None
    assert rows[0].n_tokens == 5 and rows[0].n_label_tokens == 3


def test_epoch_order_is_deterministic_and_reshuffled_per_epoch():
    exs = [Example([i, i + 1], [i + 1, IGNORE]) for i in range(1, 40, 2)]
    a = epoch_batches(exs, batch_size=2, seq_len=8, packing=False, pad_id=0, seed=3, epoch=0)
    b = epoch_batches(exs, batch_size=2, seq_len=8, packing=False, pad_id=0, seed=3, epoch=0)
    c = epoch_batches(exs, batch_size=2, seq_len=8, packing=False, pad_id=0, seed=3, epoch=1)
    assert [x.input_ids for x in a] == [x.input_ids for x in b]
    assert [x.input_ids for x in a] != [x.input_ids for x in c]


@pytest.mark.parametrize("content, problem", [("", "holds no examples"), ("{not json\n", "line 1 is not valid JSON")])
def test_unreadable_or_empty_data_is_a_spec_error(tmp_path, content, problem):
    p = tmp_path / "d.jsonl"
    p.write_text(content)
    with pytest.raises(SpecError, match=problem) as err:
        read_records(DataSpec(path=str(p)))
    assert err.value.field == "data.path"


def test_missing_local_file_is_not_mistaken_for_a_hub_dataset(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        read_records(DataSpec(path=str(tmp_path / "nope.jsonl")))


def test_half_written_checkpoints_are_ignored_and_cleaned(tmp_path):
    out = str(tmp_path)
    for step in (10, 20):
        ckpt.begin(out, step)
        ckpt.commit(out, step, {"step": step})
    os.makedirs(os.path.join(out, "checkpoint-30"))  # killed before the marker
    open(os.path.join(out, "checkpoint-30", "trainable.safetensors"), "wb").write(b"\0" * 10)
    ckpt.begin(out, 40)  # killed while staging
    assert ckpt.latest_checkpoint(out)[0] == 20
    ckpt.remove_stale(out)
    assert sorted(os.listdir(out)) == ["checkpoint-10", "checkpoint-20"]
    ckpt.prune(out, keep=1)
    assert [s for s, _ in ckpt.complete_checkpoints(out)] == [20]
    assert json.load(open(os.path.join(out, "checkpoint-20", "trainer_state.json")))["step"] == 20


def test_torchrun_command_from_skypilot_environment():
    env = {"SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2\n", "SKYPILOT_NODE_RANK": "1", "SKYPILOT_NUM_GPUS_PER_NODE": "8"}
    cmd = torchrun_command("job.yaml", ["--max-steps", "5"], env=env)
    assert cmd == ["env", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=35", "GPUPLAN_STOP_GRACE_S=30",
                   "python", "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=8", "--node-rank=1",
                   "--master-addr=10.0.0.1", "--master-port=29500", "-m", "train", "--config", "job.yaml",
                   "--max-steps", "5"]
    assert torchrun_command("job.yaml", env={}) == ["python", "-m", "train", "--config", "job.yaml"]
    assert "--standalone" in torchrun_command("j.yaml", env={"SKYPILOT_NUM_GPUS_PER_NODE": "4"})
    line = torchrun_shell_command("job file.yaml")
    assert "$SKYPILOT_NODE_RANK" in line.replace("${SKYPILOT_NODE_RANK:-0}", "$SKYPILOT_NODE_RANK")
    assert line.endswith("-m train --config 'job file.yaml'")
    assert line.startswith("TORCH_ELASTIC_SHUTDOWN_TIMEOUT=35 GPUPLAN_STOP_GRACE_S=30 python -m torch.distributed.run")
    assert torchrun_command("j.yaml", env={"SKYPILOT_NUM_GPUS_PER_NODE": "2"}, grace_s=115)[1:3] == [
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=120", "GPUPLAN_STOP_GRACE_S=115"]


def test_shell_command_expands_on_a_skypilot_node(tmp_path):
    line = torchrun_shell_command("job.yaml", python="echo")
    env = {**os.environ, "SKYPILOT_NODE_IPS": "10.0.0.7\n10.0.0.8", "SKYPILOT_NODE_RANK": "1",
           "SKYPILOT_NUM_GPUS_PER_NODE": "4"}
    out = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, check=True).stdout
    assert "--nnodes=2 --nproc-per-node=4 --node-rank=1 --master-addr=10.0.0.7" in out


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 100, 10, "cosine") < 0.01
    assert lr_factor(99, 100, 10, "constant") == 1.0


def test_smoke_config_module_is_torch_free():
    code = "import sys, train.smoke as s; assert 'torch' not in sys.modules; print(s.SMOKE_LLAMA_CONFIG['vocab_size'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "264"


def test_the_launchers_run_command_gives_workers_the_providers_preemption_grace():
    from launch.commands import run_command
    from train.preemption import NOTICE_S

    line = run_command(2, 8, grace_s=NOTICE_S["aws"])
    assert line.startswith("TORCH_ELASTIC_SHUTDOWN_TIMEOUT=125 GPUPLAN_STOP_GRACE_S=120 python -m torch.distributed.run")
    assert run_command(1, 1, grace_s=NOTICE_S["gcp"]) == "GPUPLAN_STOP_GRACE_S=30 python -m train --config job.yaml"
    assert run_command(1, 1) == "python -m train --config job.yaml"


def test_a_spec_written_out_in_full_loads_back_unchanged(tmp_path):
    """What launch ships (dump_spec: every field, defaults included, e.g. `modules_to_save: []`) is a valid job."""
    from train.spec import JobSpec, dump_spec, load_spec

    spec = JobSpec(model="smoke-llama")
    path = tmp_path / "job.yaml"
    path.write_text(dump_spec(spec))
    assert load_spec(path) == spec
