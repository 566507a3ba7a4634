"""The trainer never degrades silently: data problems are one-line errors or counted, packing never attends
across examples, the loss is the model's own, and bad numbers stop the run before any model is loaded."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from train.checks import check_raw_nulls, check_trainable
from train.data import (IGNORE, DataStats, apply_chat_template_override, build_examples, build_examples_with_stats,
                        epoch_batches, Example)
from train.spec import DataSpec, SpecError, spec_from_dict

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "smoke.jsonl"
CHAT = [{"messages": [{"role": "user", "content": "What is 2 plus 2?"},
                      {"role": "assistant", "content": "2 plus 2 is 4."}]}]


@pytest.fixture()
def tokenizer():
    from train.smoke import build_smoke_tokenizer

    return build_smoke_tokenizer()


# -- data integrity ----------------------------------------------------------------------------------
def test_a_template_that_is_not_prefix_stable_stops_completion_only_loss_with_one_named_error(tokenizer):
    # renders the turn count into the first line: every prefix render differs from the full one
    tokenizer.chat_template = ("{{ messages|length }}\n{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                               "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    with pytest.raises(SpecError) as err:
        build_examples(CHAT, DataSpec(path="x.jsonl"), tokenizer, seq_len=256)
    assert err.value.field == "data.chat_template" and "completion_only_loss: false" in err.value.fix
    # turning completion-only loss off is an explicit choice: then every token trains
    (ex,) = build_examples(CHAT, DataSpec(path="x.jsonl", completion_only_loss=False), tokenizer, seq_len=256)
    assert ex.n_label_tokens == len(ex.input_ids) - 1


def test_chat_records_without_any_template_name_the_field_to_set(tokenizer):
    tokenizer.chat_template = None
    with pytest.raises(SpecError, match="has none") as err:
        build_examples(CHAT, DataSpec(path="x.jsonl"), tokenizer, seq_len=256)
    assert err.value.field == "data.chat_template"


def test_a_chat_template_override_replaces_the_tokenizers_and_is_used_for_the_labels(tokenizer, tmp_path):
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}[assistant] {% endif %}")
    apply_chat_template_override(tokenizer, DataSpec(path="x.jsonl", chat_template=str(template)))
    (ex,) = build_examples(CHAT, DataSpec(path="x.jsonl"), tokenizer, seq_len=256)
    assert tokenizer.decode(ex.input_ids).startswith("[user] What is 2 plus 2?\n[assistant] ")
    assert tokenizer.decode([t for t in ex.labels if t != IGNORE]) == "2 plus 2 is 4.\n"
    with pytest.raises(SpecError) as err:
        apply_chat_template_override(tokenizer, DataSpec(path="x.jsonl", chat_template="no template here"))
    assert err.value.field == "data.chat_template"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_any_chat_template_text_is_accepted_or_refused_with_a_spec_error(tokenizer, text):
    try:
        apply_chat_template_override(tokenizer, DataSpec(path="x.jsonl", chat_template=text or None))
    except SpecError as exc:
        assert exc.field == "data.chat_template"


def test_truncated_and_dropped_examples_and_trained_tokens_are_counted(tokenizer):
    rows = [{"instruction": "x" * 10, "output": "short answer"},  # fits
            {"instruction": "y" * 10, "output": "z" * 200},  # answer cut at seq_len
            {"instruction": "w" * 300, "output": "lost"}]  # the prompt fills the window: nothing left to train
    examples, stats = build_examples_with_stats(rows, DataSpec(path="x.jsonl"), tokenizer, seq_len=64)
    assert isinstance(stats, DataStats)
    assert (stats.records, stats.examples, stats.truncated, stats.dropped_no_labels) == (3, 2, 1, 1)
    assert stats.label_tokens == sum(e.n_label_tokens for e in examples)
    assert stats.label_tokens_cut > 150  # most of the long answer and all of the lost one
    assert "1 truncated" in stats.one_line() and "1 dropped" in stats.one_line()


def test_untrained_special_tokens_need_modules_to_save(tokenizer):
    import torch

    from train.model import check_new_tokens
    from train.smoke import build_smoke_model

    model = build_smoke_model()
    user, assistant = tokenizer.convert_tokens_to_ids(["<|user|>", "<|assistant|>"])
    spec = spec_from_dict({"model": "smoke-llama", "method": "lora"})
    check_new_tokens(model, tokenizer, [user, assistant], spec)  # trained (random) rows: fine
    with torch.no_grad():
        model.get_input_embeddings().weight[[user, assistant]] = 0.0  # as Llama-3 base ships its chat tokens
    with pytest.raises(SpecError) as err:
        check_new_tokens(model, tokenizer, [user, assistant], spec)
    assert err.value.field == "modules_to_save" and "embed_tokens, lm_head" in err.value.fix
    fixed = spec_from_dict({"model": "smoke-llama", "method": "lora", "modules_to_save": "embed_tokens,lm_head"})
    check_new_tokens(model, tokenizer, [user, assistant], fixed)
    check_new_tokens(model, tokenizer, [user, assistant], spec_from_dict({"model": "smoke-llama", "method": "full"}))


# -- packing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("flatten", [False, True])
def test_packed_micro_batches_of_several_rows_give_each_example_its_unpacked_logits(tokenizer, attention, flatten):
    import torch

    from train.smoke import build_smoke_model

    model = build_smoke_model().eval()
    model.config.use_cache = False
    model.set_attn_implementation(attention)
    texts = ["first example", "the second one is longer", "third", "and a fourth example", "five", "six six six"]
    exs = [Example(list(t.encode()), list(t.encode())[1:] + [IGNORE]) for t in texts]
    (batch,) = epoch_batches(exs, batch_size=3, seq_len=32, packing=True, pad_id=0, seed=0, epoch=0,
                             flatten_packed=flatten)[:1]
    if flatten:  # flash attention's layout: one row, the only one its variable-length path takes
        assert len(batch.input_ids) == 1 and len(batch.input_ids[0]) == 3 * 32
    else:
        assert len(batch.input_ids) == 3 and all(len(r) == 32 for r in batch.input_ids)
    ids = [t for row in batch.input_ids for t in row]
    pos = [t for row in batch.position_ids for t in row]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(batch.input_ids), position_ids=torch.tensor(batch.position_ids)).logits
        packed = logits.reshape(-1, logits.shape[-1])
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        checked = 0
        for a, b in zip(starts, starts[1:]):
            seq = ids[a:b]
            if not any(bytes(seq).startswith(t.encode()) for t in texts):
                continue  # padding at the end of a row
            alone = model(input_ids=torch.tensor([seq]), position_ids=torch.arange(len(seq))[None]).logits[0]
            assert torch.allclose(packed[a:b], alone, atol=1e-5), attention
            checked += 1
    assert checked >= 4


# -- the loss is the model's own -----------------------------------------------------------------------
def _tiny(kind: str):
    import torch
    from transformers import (CohereConfig, CohereForCausalLM, GraniteConfig, GraniteForCausalLM, MixtralConfig,
                              MixtralForCausalLM)

    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=128)
    torch.manual_seed(0)
    if kind == "cohere":
        return CohereForCausalLM(CohereConfig(**small, logit_scale=0.25))
    if kind == "granite":
        return GraniteForCausalLM(GraniteConfig(**small, logits_scaling=4.0))
    return MixtralForCausalLM(MixtralConfig(**small, num_local_experts=4, num_experts_per_tok=2,
                                            output_router_logits=True, router_aux_loss_coef=0.5))


@pytest.mark.parametrize("kind", ["cohere", "granite", "mixtral"])
def test_loss_equals_the_models_own_forward_with_logit_scaling_and_moe_aux_loss(kind):
    import torch

    from train.loss import LOSS_CHUNKS, CausalLMLoss

    model = _tiny(kind).eval()
    ids = torch.randint(0, 128, (1, 24), generator=torch.Generator().manual_seed(1))
    labels = torch.cat([ids[:, 1:], torch.full((1, 1), IGNORE)], 1)  # the trainer's pre-shifted labels
    with torch.no_grad():
        expected = float(model(input_ids=ids, labels=ids).loss)
        for chunks in (1, LOSS_CHUNKS):
            total, n = CausalLMLoss(model, chunks=chunks)(ids, labels, torch.arange(24)[None])
            assert float(total / n) == pytest.approx(expected, rel=1e-5), (kind, chunks)
        hidden = model.model(input_ids=ids).last_hidden_state
        plain = torch.nn.functional.cross_entropy(model.lm_head(hidden)[0, :-1].float(), ids[0, 1:])
    assert abs(float(plain) - expected) > 1e-3  # the scaling / aux loss is really there


def test_max_grad_norm_zero_means_no_clipping_and_still_reports_the_norm():
    import torch

    from train.recipe import _clip

    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert _clip(None, [p], 0.0, fsdp=False) == pytest.approx(5.0)
    assert torch.equal(p.grad, torch.tensor([3.0, 4.0, 0.0, 0.0]))
    assert _clip(None, [p], 1.0, fsdp=False) == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-4)


# -- checks before any model load ------------------------------------------------------------------------
def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


@pytest.mark.parametrize("line, field", [("grad_accum: 1e30", "grad_accum"), ("max_steps: 1e30", "max_steps"),
                                         ("lora_r: null", "lora_r"), ("data: {path: " + str(DATA) + ", format: null}",
                                                                       "data.format")])
def test_numbers_that_would_hang_and_nulls_stop_before_torch_is_imported(tmp_path, line, field):
    job = tmp_path / "job.yaml"
    data_line = "" if line.startswith("data:") else f"data: {{path: {DATA}}}\n"
    job.write_text(f"model: smoke-llama\n{data_line}{line}\n")
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "train", "--config", str(job), "--output-dir", str(out)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), proc.stderr
    assert not out.exists()
    assert time.monotonic() - t0 < 30  # no model was built


def test_pure_bf16_full_fine_tuning_is_warned_about():
    spec = spec_from_dict({"model": "smoke-llama", "method": "full", "precision": "bf16", "data": {"path": "x.jsonl"}})
    (warning,) = check_trainable(spec)
    assert "bf16-mixed" in warning
    assert check_trainable(spec_from_dict({"model": "m", "method": "full", "precision": "bf16-mixed",
                                           "data": {"path": "x.jsonl"}})) == []


@settings(max_examples=80, deadline=None)
@given(raw=st.dictionaries(st.sampled_from(["lora_r", "seq_len", "name", "max_steps", "data", "gpu", "stack"]),
                           st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                     st.dictionaries(st.sampled_from(["path", "format", "chat_template"]),
                                                     st.one_of(st.none(), st.text(max_size=5))))))
def test_null_check_reads_any_mapping_and_only_raises_spec_errors(raw):
    try:
        check_raw_nulls(raw)
    except SpecError as exc:
        assert exc.field.replace("data.", "") in ("lora_r", "seq_len", "stack", "format", "chat_template", "path")


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.text(max_size=30), st.lists(st.text(max_size=8), max_size=4), st.integers(), st.none()))
def test_modules_to_save_accepts_names_and_refuses_anything_else_with_a_spec_error(value):
    try:
        spec = spec_from_dict({"model": "m", "modules_to_save": value})
    except SpecError as exc:
        assert exc.field == "modules_to_save"
        return
    assert all(isinstance(n, str) and n for n in spec.modules_to_save)


def test_a_checkpoint_holds_the_loss_scaler_and_is_a_peft_adapter(tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from train.adapter_io import adapter_keys
    from train.distributed import DistEnv
    from train.recipe import _load_checkpoint, _rng_state, _save_checkpoint
    from train.shard import trainable_names
    from train.smoke import build_smoke_model

    env = DistEnv(0, 1, 0, "cpu")
    torch.manual_seed(0)
    lm = get_peft_model(build_smoke_model(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                        task_type="CAUSAL_LM", init_lora_weights=False))
    names = trainable_names(lm)
    keys = adapter_keys(lm, list(names.values()))
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(torch.ones(()))  # initialises the scale
    scaler.update(new_scale=128.0)  # as after overflows halved it
    _save_checkpoint(env, str(tmp_path), 5, lm, names, keys, lm, opt, sched, scaler, {"step": 5}, _rng_state(),
                     keep=2, fsdp=False)
    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0)
    state, note = _load_checkpoint(env, str(tmp_path / "checkpoint-5"), opt, sched, fresh, fsdp=False)
    assert state["step"] == 5 and note is None and fresh.get_scale() == 128.0
    ids = torch.tensor([list(b"hello there")])
    reloaded = PeftModel.from_pretrained(build_smoke_model(), str(tmp_path / "checkpoint-5"))
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, lm(input_ids=ids).logits, atol=1e-6)
        assert not torch.allclose(build_smoke_model()(input_ids=ids).logits, lm(input_ids=ids).logits, atol=1e-3)


@settings(max_examples=100, deadline=None)
@given(raw=st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(str)))
def test_the_stop_grace_read_from_the_environment_is_always_a_usable_number_of_seconds(raw):
    import math

    from train.preemption import DEFAULT_GRACE_S, stop_grace_s

    grace = stop_grace_s({"GPUPLAN_STOP_GRACE_S": raw})
    assert math.isfinite(grace) and grace > 0
    assert stop_grace_s({}) == DEFAULT_GRACE_S == 30.0
