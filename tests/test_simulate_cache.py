"""The simulation cache: keys follow the configuration, and any file content reads as a hit or a clean miss."""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.estimator.simulate import cache
from train.spec import JobSpec

VALUES = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}


def test_key_changes_with_what_shapes_the_step_and_not_with_data_or_schedule() -> None:
    spec = JobSpec(model="smoke-llama")
    k = cache.key(spec, VALUES, 1, False, False, 1)
    assert k == cache.key(dataclasses.replace(spec, epochs=3.0, learning_rate=1e-5, output_dir="x"), VALUES, 1,
                          False, False, 1)
    for other in (dataclasses.replace(spec, seq_len=4096), dataclasses.replace(spec, method="lora"),
                  dataclasses.replace(spec, optimizer="adamw")):
        assert cache.key(other, VALUES, 1, False, False, 1) != k
    assert cache.key(spec, VALUES, 8, False, False, 1) != k
    assert cache.key(spec, VALUES, 1, True, False, 1) != k
    assert cache.key(spec, VALUES, 1, False, False, 2) != k
    assert cache.key(spec, dict(VALUES, hidden_size=128), 1, False, False, 1) != k


def test_stored_result_reads_back_under_its_key_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path))
    path = cache.store("abc", {"peak_allocated_gib": 1.5})
    assert path.parent == tmp_path / "simulations"
    assert cache.load("abc") == {"peak_allocated_gib": 1.5}
    assert cache.load("other") is None
    path.rename(tmp_path / "simulations" / "other.json")  # a file under the wrong name is not trusted
    assert cache.load("other") is None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_cache_file_content_is_a_hit_or_a_miss_never_an_error(tmp_path, monkeypatch, blob: bytes) -> None:
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path))
    target = cache.path_for("k")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(blob)
    got = cache.load("k")
    assert got is None or isinstance(got, dict)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                     max_leaves=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_JSON, st.dictionaries(st.sampled_from(["model_type", "text_config", "hidden_size"]), _JSON)))
def test_any_config_json_is_read_or_refused_with_a_one_line_model_error(tmp_path, value) -> None:
    import json

    from planner.estimator.simulate.build import hf_config_values
    from train.spec import SpecError

    path = tmp_path / "config.json"
    path.write_text(json.dumps(value))
    try:
        cfg = hf_config_values(str(path))
    except SpecError as exc:
        assert exc.field == "model" and "\n" not in exc.one_line()
    else:
        assert isinstance(cfg, dict) and isinstance(cfg["model_type"], str) and cfg["model_type"]


def test_a_registry_id_and_a_multimodal_config_give_the_text_decoders_values(tmp_path) -> None:
    import json

    from planner.estimator.simulate.build import hf_config_values

    assert hf_config_values("meta-llama/Llama-3.1-8B")["num_hidden_layers"] == 32
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text",
                                                                        "num_hidden_layers": 34}}))
    assert hf_config_values(str(path)) == {"model_type": "gemma3_text", "num_hidden_layers": 34}
