"""How the importers read the settings that move memory, speed and cost: TRL JSON with nested PEFT and
bitsandbytes configs, DeepSpeed files, FSDP options, optimizer and attention names, tool defaults."""
from __future__ import annotations

import json

import pytest

from planner.imports.common import attention, deepspeed_parallel, fsdp_parallel, optimizer
from planner.imports.load import job_from_mapping, load_job
from train.spec import SpecError


def test_a_trl_json_with_nested_lora_and_bitsandbytes_configs_is_qlora(tmp_path):
    cfg = {"model_name_or_path": "meta-llama/Llama-3.1-8B", "output_dir": "out", "per_device_train_batch_size": 2,
           "gradient_accumulation_steps": 16, "num_train_epochs": 2, "max_length": 4096, "optim": "adamw_torch_fused",
           "bf16": True, "gradient_checkpointing": False,
           "peft_config": {"r": 32, "lora_alpha": 64, "lora_dropout": 0.0, "target_modules": "all-linear",
                           "task_type": "CAUSAL_LM"},
           "quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                   "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"},
           "fsdp": "full_shard auto_wrap offload", "report_to": "wandb"}
    path = tmp_path / "sft_config.json"
    path.write_text(json.dumps(cfg))
    spec, report = load_job(str(path))
    assert report.format == "trl" and spec.stack == "trl"
    assert (spec.method, spec.lora_r, spec.lora_alpha, spec.lora_targets, spec.double_quant) == (
        "qlora", 32, 64, "all-linear", True)
    assert (spec.seq_len, spec.batch_size, spec.grad_accum, spec.epochs) == (4096, 2, 16, 2.0)
    assert (spec.optimizer, spec.precision, spec.gradient_checkpointing, spec.parallel) == (
        "adamw", "bf16", False, "fsdp-offload")
    assert {i.key for i in report.ignored} >= {"report_to", "peft_config.task_type",
                                               "quantization_config.bnb_4bit_compute_dtype"}


def test_trl_defaults_are_trls_own():
    spec, report = job_from_mapping({"model_name_or_path": "Qwen/Qwen2.5-7B", "use_peft": True}, "trl")
    # SFTConfig: max_length 1024, bf16 on, checkpointing on; ModelConfig: r 16, alpha 32; PEFT default targets
    assert (spec.seq_len, spec.precision, spec.gradient_checkpointing) == (1024, "bf16", True)
    assert (spec.lora_r, spec.lora_alpha, spec.lora_targets, spec.batch_size, spec.epochs) == (
        16, 32, ["q_proj", "v_proj"], 8, 3.0)
    assert all(m.key == "(default)" for m in report.mapped if m.field in ("seq_len", "lora_targets"))


def test_llama_factory_full_fine_tune_upcasts_unless_pure_bf16_and_rejects_what_it_cannot_size():
    base = {"model_name_or_path": "Qwen/Qwen2.5-7B", "finetuning_type": "full", "bf16": True}
    assert job_from_mapping(base, "llama-factory")[0].precision == "bf16-mixed"
    assert job_from_mapping({**base, "pure_bf16": True}, "llama-factory")[0].precision == "bf16"
    for bad, key in (({"stage": "dpo"}, "stage"), ({"finetuning_type": "freeze"}, "finetuning_type"),
                     ({"finetuning_type": "lora", "quantization_bit": 8}, "quantization_bit")):
        with pytest.raises(SpecError) as e:
            job_from_mapping({**base, **bad}, "llama-factory")
        assert e.value.field.startswith(key)


def test_a_deepspeed_json_beside_the_config_is_read_for_its_stage_and_offload(tmp_path):
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}))
    assert deepspeed_parallel("ds.json", str(tmp_path))[0] == "fsdp-offload"
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert deepspeed_parallel("ds.json", str(tmp_path))[0] == "ddp"
    assert deepspeed_parallel("deepspeed_configs/zero3_bf16.json", str(tmp_path))[0] == "zero3"
    assert deepspeed_parallel("examples/deepspeed/ds_z3_offload_config.json", str(tmp_path))[0] == "fsdp-offload"
    assert deepspeed_parallel({"zero_optimization": {"stage": 3}}, str(tmp_path))[0] == "zero3"
    with pytest.raises(SpecError):
        deepspeed_parallel("my_ds.json", str(tmp_path))


@pytest.mark.parametrize("opts, cfg, want", [
    ("full_shard auto_wrap", None, "fsdp"), (["full_shard", "offload"], None, "fsdp-offload"),
    ("", {"offload_params": True}, None), ("shard_grad_op", None, "ddp"), (None, None, None),
    ("full_shard", {"offload_params": True}, "fsdp-offload")])
def test_fsdp_options(opts, cfg, want):
    got = fsdp_parallel(opts, cfg)
    assert (got[0] if got else None) == want


def test_an_axolotl_fsdp_config_alone_turns_fsdp_on():
    assert fsdp_parallel(None, {"offload_params": True}, config_enables=True)[0] == "fsdp-offload"
    assert fsdp_parallel(None, {"reshard_after_forward": True}, config_enables=True)[0] == "fsdp"


@pytest.mark.parametrize("name, want", [
    ("adamw_torch_fused", "adamw"), ("paged_adamw_8bit", "paged-adamw-8bit"), ("adamw_bnb_8bit", "adamw-8bit"),
    ("bitsandbytes.optim.PagedAdamW8bit", "paged-adamw-8bit"), ("torch.optim.AdamW", "adamw"),
    ("paged_adamw_32bit", "adamw"), ("sgd", "sgd"), ("adafactor", "adamw"), ("lion_8bit", "adamw-8bit")])
def test_optimizer_names(name, want):
    got, note = optimizer(name)
    assert got == want
    if name in ("adafactor", "lion_8bit"):
        assert "upper bound" in note


@pytest.mark.parametrize("name, want", [("flash_attention_2", "flash"), ("fa2", "flash"), ("sdpa", "sdpa"),
                                        ("eager", "eager"), ("disabled", "eager"), ("flex_attention", "sdpa")])
def test_attention_names(name, want):
    assert attention(name)[0] == want
    assert attention("quantum_attention") is None


def test_axolotl_reads_its_own_spellings():
    spec, report = job_from_mapping({"base_model": "mistralai/Mistral-7B-v0.1", "adapter": "lora",
                                     "load_in_4bit": True, "lora_target_modules": ["q_proj", "v_proj"],
                                     "sequence_len": 8192, "micro_batch_size": 1, "batch_size": 16,
                                     "gradient_checkpointing": "offload", "fp16": True, "sdp_attention": True,
                                     "deepspeed": "deepspeed_configs/zero2.json",
                                     "plugins": ["axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"]},
                                    "axolotl")
    assert (spec.method, spec.seq_len, spec.grad_accum, spec.gradient_checkpointing) == ("qlora", 8192, 16, True)
    assert (spec.precision, spec.attention, spec.parallel, spec.chunked_loss) == ("fp16-mixed", "sdpa", "ddp", True)
    with pytest.raises(SpecError) as e:
        job_from_mapping({"base_model": "x/y", "adapter": "lora", "load_in_8bit": True}, "axolotl")
    assert e.value.field.startswith("load_in_8bit")


def test_a_dataset_size_the_config_does_give_is_used_and_a_step_cap_shapes_the_missing_line():
    spec, report = job_from_mapping({"base_model": "meta-llama/Llama-3.1-8B", "micro_batch_size": 2,
                                     "gradient_accumulation_steps": 4, "sequence_len": 2048,
                                     "total_num_tokens": 12_345_678}, "axolotl")
    assert spec.dataset_tokens == 12_345_678 and report.missing == []
    spec, report = job_from_mapping({"model_name_or_path": "meta-llama/Llama-3.1-8B", "max_steps": 500,
                                     "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
                                     "max_length": 2048}, "trl")
    assert spec.max_steps == 500
    (miss,) = report.missing
    assert miss.field == "dataset_tokens" and "500" in miss.fix and str(2 * 4 * 2048) in miss.fix


def test_llama_factory_max_samples_counts_examples_once_their_length_is_given():
    cfg = {"model_name_or_path": "Qwen/Qwen2.5-7B", "max_samples": 5000}
    spec, report = job_from_mapping(cfg, "llama-factory")
    assert spec.dataset_examples is None and any(i.key == "max_samples" for i in report.ignored)
    spec, report = job_from_mapping(cfg, "llama-factory", {"mean_example_tokens": 800})
    assert spec.total_tokens() == 5000 * 800 * 3  # LLaMA-Factory's default num_train_epochs is 3


@pytest.mark.slow  # importing transformers takes most of it
def test_a_saved_transformers_training_arguments_json_imports_with_every_key_accounted_for(tmp_path):
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(output_dir="out", per_device_train_batch_size=4,
                                          gradient_checkpointing=True, num_train_epochs=2,
                                          fsdp_config={"min_num_params": 0})
    cfg = json.loads(args.to_json_string())
    cfg.update(model_name_or_path="meta-llama/Llama-3.1-8B", bf16=True)  # bf16 cannot be built on a CPU-only box
    path = tmp_path / "training_args.json"
    path.write_text(json.dumps(cfg))
    spec, report = load_job(str(path))
    assert report.format == "trl"
    assert (spec.batch_size, spec.epochs, spec.gradient_checkpointing, spec.precision) == (4, 2.0, True, "bf16")
    assert spec.parallel == "ddp"  # fsdp_config alone does not turn FSDP on in transformers
    unknown = [i.key for i in report.ignored if "importer knows" in i.reason]
    assert len(unknown) <= 3, unknown


def test_a_pre_quantized_bnb_4bit_model_is_qlora_even_without_4bit_flags():
    spec, report = job_from_mapping({"base_model": "unsloth/llama-3-8b-bnb-4bit", "adapter": "lora"}, "axolotl")
    assert spec.method == "qlora"
    assert any(m.field == "method" and "pre-quantized" in m.note for m in report.mapped)
