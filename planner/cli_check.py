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
    summary.json); prints predicted vs measured peak memory and tokens/s, with the error."""
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
        for col in ("quantity", "predicted", "measured", "error"):
            t.add_column(col, justify="left" if col == "quantity" else "right")
        for row in res["rows"]:
            measured = "-" if row["measured"] is None else f"{row['measured']:,.2f}"
            err = "-" if row["error_pct"] is None else f"{row['error_pct']:+.1f}%"
            t.add_row(f"{row['quantity']} ({row['unit']})", f"{row['predicted']:,.2f}", measured, err)
        console.print(t)
