"""`gpuplan simulate` and `gpuplan plan --simulate`: keys, cache, and the one-line message without torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cli import main

MEMORY_KEYS = {"peak_allocated_gib", "peak_reserved_gib", "capacity_gib", "breakdown_gib", "headroom_gib"}
REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_without_torch_says_how_to_install_it_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now raises ImportError
    code, out, err = _run(["simulate", "--model", "smoke-llama", "--gpu", "A10G"], capsys)
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0
    assert "install it with: pip install 'gpuplan[train]'" in err
    code, _out, err = _run(["plan", "--model", "smoke-llama", "--gpu", "A10G", "--simulate"], capsys)
    assert code == 2 and "install it with: pip install 'gpuplan[train]'" in err


def test_plan_simulate_needs_one_gpu_type(capsys) -> None:
    code, _out, err = _run(["plan", "--model", "smoke-llama", "--simulate"], capsys)
    assert code == 2 and "--gpu" in err and err.strip().count("\n") == 0


def test_plan_without_simulate_never_imports_torch() -> None:
    code = ("import sys; from planner.cli import main\n"
            "try:\n    main(['plan', '--model', 'smoke-llama', '--gpu', 'A10G', '--format', 'json', '--no-local'])\n"
            "except SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert "NOTORCH" in res.stderr, res.stderr[-2000:]


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GPUPLAN_CACHE_DIR", str(tmp_path))
    return tmp_path / "simulations"


def test_simulate_json_has_the_plan_memory_keys_and_the_simulators_own(cache_dir, capsys) -> None:
    pytest.importorskip("torch")
    code, out, err = _run(["simulate", "--model", "smoke-llama", "--method", "lora", "--gpu", "A10G",
                           "--seq-len", "128", "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert MEMORY_KEYS <= set(doc)
    assert {"peak_moment", "peak_op", "fragmentation", "estimator"} <= set(doc)
    assert set(doc["breakdown_gib"]) == {"weights", "adapter", "gradients", "optimizer", "activations", "logits",
                                         "overhead"}
    assert doc["estimator"]["kind"] == "simulated" and doc["estimator"]["stack"] == "gpuplan"
    assert doc["estimator"]["extrapolated"] is False  # 2 layers: all simulated
    assert doc["capacity_gib"] == pytest.approx(22.49, abs=0.5)
    assert doc["peak_reserved_gib"] >= doc["peak_allocated_gib"] > 0
    assert abs(sum(doc["breakdown_gib"].values()) - doc["peak_allocated_gib"]) < 0.01
    assert len(list(cache_dir.glob("*.json"))) == 1


def test_a_cached_configuration_returns_the_same_result_without_running_again(cache_dir, monkeypatch) -> None:
    pytest.importorskip("torch")
    import planner.estimator.simulate as sim
    from train.spec import JobSpec, SpecError

    spec = JobSpec(model="smoke-llama", method="lora", seq_len=64, gpu="L4")
    first = sim.simulate_memory(spec, "L4", 1)
    assert first["estimator"]["cached"] is False

    def boom(*_a, **_k):
        raise AssertionError("simulated again")

    monkeypatch.setattr(sim, "_simulate_depth", boom)
    second = sim.simulate_memory(spec, "L4", 1)
    assert second["estimator"]["cached"] is True
    strip = lambda d: {k: v for k, v in d.items() if k != "estimator"}  # noqa: E731
    assert strip(second) == strip(first)
    # another GPU of the same generation reuses the step; capacity and headroom follow the GPU
    other = sim.simulate_memory(spec, "A100", 1)
    assert other["peak_allocated_gib"] == first["peak_allocated_gib"] and other["capacity_gib"] != first["capacity_gib"]
    # a different configuration is a miss (the simulator's failure surfaces as a one-line SpecError)
    with pytest.raises(SpecError, match="simulated again"):
        sim.simulate_memory(JobSpec(model="smoke-llama", method="lora", seq_len=128), "L4", 1)
    # a corrupt cache file is a miss, not a crash
    for f in cache_dir.glob("*.json"):
        f.write_text("{not json")
    with pytest.raises(SpecError, match="simulated again"):
        sim.simulate_memory(spec, "L4", 1)


def test_plan_simulate_replaces_the_memory_section_and_says_so(cache_dir, capsys) -> None:
    pytest.importorskip("torch")
    code, out, err = _run(["plan", "--model", "smoke-llama", "--method", "lora", "--gpu", "L4", "--seq-len", "128",
                           "--simulate", "--format", "json", "--no-local"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["estimator"]["kind"] == "simulated"
    assert MEMORY_KEYS <= set(doc["memory"]) and "peak_moment" in doc["memory"]
    assert MEMORY_KEYS <= set(doc["memory_analytic"])
    assert doc["memory"]["peak_allocated_gib"] != doc["memory_analytic"]["peak_allocated_gib"]
    assert doc["fits"] is True
