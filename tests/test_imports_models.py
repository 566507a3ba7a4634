"""Model ids as other tools' configs write them resolve offline: community mirrors and re-uploads of a registry
model map to its entry by repository name, and the plan says which entry it used."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.models import mirror_entry, registry_ids, resolve_model
from train.spec import SpecError


@pytest.mark.parametrize("name, entry", [
    ("NousResearch/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B"),
    ("NousResearch/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf"),
    ("TheBloke/Llama-2-7B-fp16", "meta-llama/Llama-2-7b-hf"),
    ("unsloth/llama-3-8b-Instruct-bnb-4bit", "meta-llama/Meta-Llama-3-8B"),
    ("unsloth/Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"),
    ("unsloth/Qwen2.5-7B-Instruct-unsloth-bnb-4bit", "Qwen/Qwen2.5-7B"),
    ("unsloth/mistral-7b-v0.3-bnb-4bit", "mistralai/Mistral-7B-v0.3"),
    ("unsloth/gemma-2-9b-it", "google/gemma-2-9b"),
    ("unsloth/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B"),
])
def test_a_mirror_resolves_to_its_registry_entry_and_says_so(name, entry):
    assert mirror_entry(name) == entry
    arch = resolve_model(name)
    assert arch.hf_id == entry and arch.name == name
    assert entry in arch.source and "mirror" in arch.source
    assert arch.total_params() == resolve_model(entry).total_params()


@pytest.mark.parametrize("name", ["TheBloke/Llama-2-7B-GPTQ", "someone/totally-unknown-model",
                                  "unsloth/llama-3-8b-GGUF"])
def test_weights_in_other_formats_and_unknown_names_are_not_guessed(name):
    assert mirror_entry(name) is None
    with pytest.raises(SpecError) as e:
        resolve_model(name)
    assert e.value.field == "model"


def test_registry_ids_and_their_own_spelling_are_untouched():
    for hf_id in registry_ids():
        if hf_id == "smoke-llama":
            continue
        arch = resolve_model(hf_id)
        assert arch.hf_id == hf_id and arch.source == "registry"


@settings(max_examples=100, deadline=None)
@given(owner=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True),
       entry=st.sampled_from([i for i in registry_ids() if "/" in i]),
       suffix=st.sampled_from(["", "-bnb-4bit", "-unsloth-bnb-4bit", "-fp16", "-Instruct", "-Instruct-bnb-4bit"]))
def test_any_owner_re_uploading_a_registry_model_resolves_to_an_entry_of_the_same_size(owner, entry, suffix):
    name = f"{owner}/{entry.split('/', 1)[1]}{suffix}"
    found = mirror_entry(name)
    assert found is not None
    assert resolve_model(found).total_params() == resolve_model(entry).total_params()
