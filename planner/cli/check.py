"""`gpuplan check RUN...`: how right was the plan? Measured (summary.json) against predicted."""
from __future__ import annotations

import json
import sys
from typing import Any

import click


@click.command("check")
@click.argument("runs", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="output format")
def check(runs: tuple[str, ...], fmt: str) -> None:
    """Compare the plan with real runs: each RUN is an output folder of `python -m train` (or its
    summary.json); prints predicted vs measured peak memory and tokens/s, with the error, before and after
    your calibration (gpuplan calibrate) when there is one."""
    from planner.check import check_run, read_summary

    results: list[dict[str, Any]] = [check_run(read_summary(r)) for r in runs]
    if fmt == "json":
        sys.stdout.write(json.dumps(results, indent=2, allow_nan=False) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for res in results:
        t = Table(title=f"{res['run']}: {res['method']} of {res['model']} on {res['gpus']} x {res['gpu']}",
                  title_justify="left")
        calibrated = res.get("calibration") is not None
        cols = ["quantity", "predicted", "measured", "error"] + (["calibrated", "error after"] if calibrated else [])
        for col in cols:
            t.add_column(col, justify="left" if col == "quantity" else "right")

        def pct(v: Any) -> str:
            return "-" if v is None else f"{v:+.1f}%"

        for row in res["rows"]:
            measured = "-" if row["measured"] is None else f"{row['measured']:,.2f}"
            cells = [f"{row['quantity']} ({row['unit']})", f"{row['predicted']:,.2f}", measured, pct(row["error_pct"])]
            if calibrated:
                cells += [f"{row['predicted_calibrated']:,.2f}", pct(row["error_calibrated_pct"])]
            t.add_row(*cells)
        console.print(t)
        band = res.get("band_gib") or []
        if band:
            console.print(f"estimate ({res.get('stack')} stack): peak at {res.get('peak_moment')}, reserved "
                          f"{band[0]:.2f}-{band[1]:.2f} GiB within the estimator's measured error band")
        if calibrated:
            console.print(f"calibration: {res['calibration']} (gpuplan calibrate)")
