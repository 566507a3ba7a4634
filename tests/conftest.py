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
