"""metrics.jsonl (one line per optimizer step, appended and flushed) and summary.json (atomic, at the end).

The key names are a contract with the planner, which reads summary.json to check and calibrate its
estimates: steps, resumed_from_step, final_loss, tokens_per_s, step_time_s, peak_memory_allocated_gib,
peak_memory_reserved_gib, gpu, gpu_count, spec. Extend, never rename.
"""
from __future__ import annotations

import json
import os
from typing import Any, IO

from train.fsio import atomic_write_json, atomic_write_text

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_KEYS = ("steps", "resumed_from_step", "final_loss", "tokens_per_s", "step_time_s",
                "peak_memory_allocated_gib", "peak_memory_reserved_gib", "gpu", "gpu_count", "spec")


class MetricsLog:
    """Appends one JSON line per step; on (re)start keeps only the lines up to the resumed step."""

    def __init__(self, output_dir: str, keep_up_to_step: int) -> None:
        self.path = os.path.join(output_dir, METRICS_FILE)
        if os.path.exists(self.path):
            kept = [line for line in read_metrics(self.path) if line.get("step", 0) <= keep_up_to_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


def read_metrics(path: str) -> list[dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
    return out


def write_summary(output_dir: str, summary: dict[str, Any]) -> str:
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"summary lacks {missing}")
    path = os.path.join(output_dir, SUMMARY_FILE)
    atomic_write_json(path, summary)
    return path
