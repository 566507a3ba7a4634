"""The folder a launch ships to the training machine: the `train` package plus the job spec.

SkyPilot syncs it as the task's workdir, so the remote run is `python -m train --config job.yaml` from that
folder, with no gpuplan install needed there: setup installs only the `train` extra's requirements, read from
this installation's metadata so they stay the ones pyproject.toml declares.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SPEC_NAME = "job.yaml"

# Used only when gpuplan's metadata cannot be read (e.g. run from a source tree that was never installed);
# mirrors pyproject.toml [project.optional-dependencies] train.
_TRAIN_FALLBACK = (
    "torch>=2.4", "transformers>=5.0,<6", "peft>=0.21", "bitsandbytes>=0.50", "accelerate>=1.0",
    "datasets>=3.0", "safetensors", "tqdm",
)


def train_requirements() -> list[str]:
    """The `train` extra's requirement strings (e.g. ``transformers<6,>=5.0``)."""
    from importlib import metadata

    try:
        reqs = metadata.requires("gpuplan") or []
    except metadata.PackageNotFoundError:
        return list(_TRAIN_FALLBACK)
    out = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        if marker and "extra" in marker and '"train"' in marker.replace("'", '"'):
            out.append(spec.strip())
    return out or list(_TRAIN_FALLBACK)


def default_launch_root() -> Path:
    """Where staged bundles live: $GPUPLAN_HOME/launches, default ~/.gpuplan/launches."""
    home = os.environ.get("GPUPLAN_HOME") or os.path.join(os.path.expanduser("~"), ".gpuplan")
    return Path(home) / "launches"


def stage_bundle(spec_yaml: str, dest: Path) -> Path:
    """Write ``dest`` = {train/, job.yaml} atomically: build beside it, then swap it into place.

    A bundle already at ``dest`` (an earlier launch of the same job) is replaced whole, never half-written.
    """
    import train

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        shutil.copytree(Path(train.__file__).resolve().parent, tmp / "train",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (tmp / SPEC_NAME).write_text(spec_yaml, encoding="utf-8")
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
