"""Checkpoints that survive preemption: checkpoint-<step>/ folders that are either complete or ignored.

A checkpoint is written into `.checkpoint-<step>.tmp/`, every file is fsynced, a `COMPLETE` marker
is written last, and the folder is renamed to `checkpoint-<step>/`. Only folders holding the marker
count, so a folder left half-written by a kill (or by a bucket mount where rename is a copy, such as
gcsfuse or S3 Mountpoint) is never resumed from. Contents:

  trainable.safetensors   trainable parameters (LoRA weights, or every weight for full fine-tuning)
  optimizer.pt, scheduler.pt
  rng_state_<rank>.pt     python / torch / CUDA RNG states of each rank
  trainer_state.json      step, tokens seen, train time (the data position is a function of step)
  COMPLETE
"""
from __future__ import annotations

import os
import re
import shutil

from train.fsio import atomic_write_json, fsync_dir, fsync_tree

MARKER = "COMPLETE"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, f"checkpoint-{step}")


def staging_dir(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, f".checkpoint-{step}.tmp")


def complete_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every complete checkpoint, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        m = _NAME.match(name)
        path = os.path.join(output_dir, name)
        if m and os.path.isfile(os.path.join(path, MARKER)) and os.path.isfile(os.path.join(path, "trainer_state.json")):
            found.append((int(m.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str) -> tuple[int, str] | None:
    done = complete_checkpoints(output_dir)
    return done[-1] if done else None


def begin(output_dir: str, step: int) -> str:
    """Create an empty staging folder for the checkpoint at `step` (rank 0 only)."""
    tmp = staging_dir(output_dir, step)
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    return tmp


def commit(output_dir: str, step: int, state: dict) -> str:
    """Seal the staging folder: trainer_state.json, fsync, COMPLETE marker, rename (rank 0 only)."""
    tmp = staging_dir(output_dir, step)
    atomic_write_json(os.path.join(tmp, "trainer_state.json"), state)
    fsync_tree(tmp)
    with open(os.path.join(tmp, MARKER), "w") as fh:
        fh.write(f"{step}\n")
        fh.flush()
        os.fsync(fh.fileno())
    final = checkpoint_dir(output_dir, step)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(output_dir)
    return final


def prune(output_dir: str, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (the marker goes first, so a crash mid-delete is safe)."""
    for _step, path in complete_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        os.unlink(os.path.join(path, MARKER))
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(output_dir: str) -> None:
    """Staging folders and unmarked checkpoint folders left by a killed run."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        path = os.path.join(output_dir, name)
        if name.startswith(".checkpoint-") and name.endswith(".tmp"):
            shutil.rmtree(path, ignore_errors=True)
        elif _NAME.match(name) and not os.path.isfile(os.path.join(path, MARKER)):
            shutil.rmtree(path, ignore_errors=True)
