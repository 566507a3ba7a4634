"""`gpuplan report`: plan a job (the same flags as `gpuplan plan`) and write its finance report folder:
report.html, report.pdf, report.json, options.csv, assumptions.csv, report.xlsx.

`--from report.json` rewrites the report from a saved plan document without planning again; `--actual RUN_DIR`
adds the measured time and cost of runs (their summary.json) against the plan.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from planner.cli.plan import plan_from_cli, pricing_options, spec_options


@click.command("report")
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@spec_options
@pricing_options
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder to write the report into (created if needed)")
@click.option("--from", "from_json", type=click.Path(dir_okay=False), default=None,
              help="regenerate from a saved report.json instead of planning again")
@click.option("--actual", "actual_dirs", multiple=True, type=click.Path(),
              help="a run folder (its summary.json) to set against the plan; repeatable")
def report(job: str | None, out_dir: str, from_json: str | None, actual_dirs: tuple[str, ...],
           **kwargs: Any) -> None:
    """Write a finance report (HTML, PDF, JSON, CSV, XLSX) for JOB.yaml, or regenerate one with --from.
    JOB and the flags are those of `gpuplan plan`; every number comes from the plan document."""
    try:
        _report(job, out_dir, from_json, actual_dirs, kwargs)
    except KeyboardInterrupt:  # click would turn it into "Aborted!" and exit 1; a shell expects 130
        click.echo("interrupted: the previous report (if any) is unchanged", err=True)
        sys.exit(130)


def _report(job: str | None, out_dir: str, from_json: str | None, actual_dirs: tuple[str, ...],
            kwargs: dict[str, Any]) -> None:
    from planner.report import load_document, write_report
    from planner.report.pdf import ReportDependencyError
    from planner.report.writer import check_target
    from train.spec import SpecError

    check_target(out_dir)  # refuse a bad folder before any work
    if from_json:
        given = [k for k, v in kwargs.items() if v not in (None, (), False)]
        if job or given:
            raise SpecError("--from", "regenerates a saved plan as it is",
                            "drop JOB and the plan flags, or drop --from to plan again")
        doc = load_document(from_json)
        checked = not actual_dirs
    else:
        checked = False
        doc = plan_from_cli(job, kwargs)
    if actual_dirs:
        from planner.report.actual import actual_rows

        doc = {**doc, "actuals": actual_rows(doc, actual_dirs)}
    try:
        written = write_report(doc, out_dir, checked=checked)
    except ReportDependencyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(written)} files to {out_dir}: {', '.join(sorted(written))}")
    rec = doc.get("recommendation")
    if rec:
        click.echo(f"recommended: {rec.get('reason', '')}")
    else:
        click.echo(f"no recommendation: {doc.get('recommendation_reason') or 'no option fits within the given limits'}")
