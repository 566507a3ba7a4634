"""The analytic memory model against the simulator on a grid of >= 200 configurations (issue 9).

    python benchmarks/analytic_vs_simulated.py [--quick] [--n 240] [--seed 0] [--json OUT] [--no-cache]

For each configuration (Llama 3.x, Qwen2.5/3, Mistral, Gemma 2/3, Phi; 0.5B-72B; full/LoRA/QLoRA; seq
512-32k; micro batch 1-8; checkpointing on/off; sdpa/flash/eager; the four optimizers; ddp/fsdp/zero3 at
1-8 GPUs; a GPU type) it prints planner.estimator.memory.estimate_memory's peak allocated memory next to the
simulated one (planner.estimator.simulate: 2 and 4 layers simulated, each phase extrapolated), the
relative error, and both fit calls; then the error distribution (mean, p90, max) and the number of
configurations the analytic model calls "fits" where the simulation says they do not.
Simulations are cached (GPUPLAN_CACHE_DIR/simulations), so a second run only re-scores the analytic model.
Needs the train extra (torch, transformers, peft, bitsandbytes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner.estimator.simulate.grid import grid, quick_grid, run, summarise  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about ten configurations instead of the grid")
    ap.add_argument("--n", type=int, default=240, help="configurations in the grid (default 240)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write rows and summary to this file")
    ap.add_argument("--no-cache", action="store_true", help="simulate even cached configurations")
    args = ap.parse_args(argv)
    try:
        from planner.estimator.simulate import require_torch

        require_torch()
    except Exception as exc:  # SpecError with the install hint
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configs = quick_grid() if args.quick else grid(args.n, args.seed)
    rows = []
    t0 = time.perf_counter()
    print(f"{'analytic':>9} {'simulated':>9} {'error':>7}  fits(a/s)  {'sim s':>5}  configuration")
    for i, row in enumerate(run(configs, use_cache=not args.no_cache), 1):
        rows.append(row)
        flag = " <- says fits, simulation OOM" if row["analytic_fits"] and not row["simulated_fits"] else ""
        print(f"{row['analytic_gib']:9.2f} {row['simulated_gib']:9.2f} {row['error']:+7.1%}  "
              f"{'y' if row['analytic_fits'] else 'n'}/{'y' if row['simulated_fits'] else 'n'}       "
              f"{row['seconds']:5.1f}  [{i}/{len(configs)}] {row['config']} ({row['peak_moment']}){flag}", flush=True)
    summ = summarise(rows)
    summ["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summ, indent=2))
    if args.json:
        from pricing.cache import write_atomic

        write_atomic(args.json, json.dumps({"summary": summ, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
