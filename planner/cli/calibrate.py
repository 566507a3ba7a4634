"""`gpuplan calibrate RUN...`: fit the estimator to your own runs and store it for `gpuplan plan`."""
from __future__ import annotations

import json
import sys

import click


@click.command("calibrate")
@click.argument("runs", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="output format")
@click.option("--dry-run", is_flag=True, help="fit and print, but do not write the calibration file")
def calibrate(runs: tuple[str, ...], fmt: str, dry_run: bool) -> None:
    """Fit a memory correction and per-GPU speed efficiency to real runs. Each RUN is an output folder of
    `python -m train` on GPUs (or its summary.json). The result replaces the calibration file
    ($GPUPLAN_CONFIG_DIR/calibration.json, else ~/.config/gpuplan/calibration.json), which `gpuplan plan`
    applies and reports under `calibration` and `assumptions`."""
    from planner.estimator.calibration import calibration_path, fit, read_run, save

    records = [read_run(r) for r in runs]  # every run is validated before anything is written
    cal = fit(records)
    path = calibration_path()
    if not dry_run:
        save(cal, path)
    doc = cal.to_dict() | {"path": str(path), "written": not dry_run}
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    click.echo(f"memory correction (measured / predicted peak allocated): {cal.memory_factor:.3f} "
               f"from {cal.memory_runs} run(s)")
    for gpu, f in sorted(cal.speed_factors.items()):
        click.echo(f"{gpu} speed efficiency (measured / predicted tokens/s): {f:.3f} from {cal.speed_runs[gpu]} run(s)")
    click.echo(("would write " if dry_run else "wrote ") + str(path))
