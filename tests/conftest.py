"""Fixtures shared by the whole suite."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# CI lays a copy of shared/ beside the clone; GPUPLAN_SHARED overrides it.
SHARED = Path(os.environ.get("GPUPLAN_SHARED", REPO.parent / "shared"))

# Never let a test start SkyPilot's local API server (it forks long-lived workers).
os.environ.setdefault("SKYPILOT_DISABLE_LOCAL_API_SERVER", "1")
# Never let a test reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Never let a developer's own `gpuplan calibrate` result (~/.config/gpuplan/calibration.json) change a plan under test.
if "GPUPLAN_CONFIG_DIR" not in os.environ:
    import tempfile

    os.environ["GPUPLAN_CONFIG_DIR"] = tempfile.mkdtemp(prefix="gpuplan-test-config-")

# Property-based tests: in CI the examples are derived from each test's name (derandomize), so a landing never
# depends on luck; on a developer's machine they are random, so new cases keep being explored (and whatever a
# run finds becomes an @example). Set HYPOTHESIS_PROFILE to choose.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
    _hypothesis_settings.register_profile("dev", print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
except ImportError:  # hypothesis is a dev dependency; a core-only checkout still runs the other tests
    pass


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED} (set GPUPLAN_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def catalogs_dir(shared: Path) -> Path:
    return shared / "data" / "catalogs"


@pytest.fixture(scope="session")
def measurements_csv(shared: Path) -> Path:
    return shared / "data" / "measurements" / "published.csv"


# Tests that take over ~20 s on the 2-core CI machine (training a model, a real browser, SkyPilot's optimizer
# in a subprocess), marked `slow` in one place: `pytest -m "not slow"` is the quick loop; CI runs them all.
# A node id prefix: a whole file, or one test (its parametrized cases included).
SLOW_TESTS = (
    "tests/test_train_qlora.py::test_smoke_job_trains_and_reports",
    "tests/test_train_qlora.py::test_sigterm_saves_and_the_same_command_resumes_to_the_same_result",
    "tests/test_train_qlora.py::test_adapter_reloads_onto_the_base_and_gives_the_same_logits",
    "tests/test_train_qlora.py::test_ddp_over_two_cpu_processes",
    "tests/test_train_benchmark.py",
    "tests/test_report_browser.py",
    "tests/test_launch_cli.py::test_local_direct_run_trains_the_smoke_model_and_leaves_an_adapter",
    "tests/test_launch_cli.py::test_local_direct_run_passes_on_the_trainers_exit_code",
    "tests/test_launch_cli.py::test_skypilots_optimizer_picks_the_instance_the_plan_recommends",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def fresh_simulation_cache(tmp_path_factory):
    """A simulation cache of the test module's own: results are computed in the test, never read from a
    developer's cache (~/.cache/gpuplan/simulations) or another module's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("simcache")))
        yield
