"""Cold-start latency of `gpuplan plan` on the bundled example, against a bare `python -c pass`.

    python benchmarks/cli_latency.py [--runs 11] [--job examples/llama3-8b-qlora.yaml]

Each run is a fresh process (what a user waits for). The machine is shared and noisy, so the script
prints medians and the ratio to the interpreter's own start-up, measured in the same run, interleaved.
Target: median under 0.5 s for the full plan (every GPU type x 1/2/4/8 GPUs plus the price comparison).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--job", default="examples/llama3-8b-qlora.yaml")
    args = ap.parse_args(argv)
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "gpuplan plan JOB (all GPUs, json)": [sys.executable, "-m", "planner.cli", "plan", args.job, "--format", "json"],
        "gpuplan plan JOB (table)": [sys.executable, "-m", "planner.cli", "plan", args.job],
        "gpuplan plan JOB --gpu A100-80GB": [sys.executable, "-m", "planner.cli", "plan", args.job, "--gpu",
                                             "A100-80GB", "--format", "json"],
    }
    for cmd in cases.values():  # warm the OS file cache and .pyc files
        _time(cmd)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, cmd in cases.items():
            times[name].append(_time(cmd))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':40} {'median s':>9} {'min s':>7} {'x python':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:40} {med:9.3f} {min(ts):7.3f} {med / base:9.1f}")
    full = statistics.median(times["gpuplan plan JOB (all GPUs, json)"])
    print(f"\nfull plan minus interpreter start-up: {full - base:.3f} s; target: median < 0.5 s -> "
          f"{'met' if full < 0.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
