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
