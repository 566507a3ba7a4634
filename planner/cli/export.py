"""`gpuplan export JOB --to axolotl|llama-factory|trl`: write a job as the config of the user's own tool.

JOB is a gpuplan job spec or any config `gpuplan plan` reads; flags override it, as in `gpuplan plan`.
Settings the tool's config cannot hold (dataset size, GPU count, ...) go into one `# gpuplan:` comment line
that the tool ignores and `gpuplan plan` reads back, so exporting and importing again gives the same job.
"""
from __future__ import annotations

from typing import Any

import click

from planner.cli.plan import spec_from_cli, spec_options


@click.command("export")
@click.argument("job", type=click.Path(dir_okay=False))
@click.option("--to", "to", required=True, type=click.Choice(["axolotl", "llama-factory", "trl"]),
              help="the tool whose config to write")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="file to write (default: standard output)")
@spec_options
def export(job: str, to: str, output: str | None, **kwargs: Any) -> None:
    """Write JOB as an axolotl, LLaMA-Factory or TRL (`trl sft --config`) config."""
    from planner.imports import export_config

    spec = spec_from_cli(job, kwargs)
    text, kept = export_config(spec, to)
    if output:
        from pricing.cache import write_atomic

        write_atomic(output, text)
        click.echo(f"wrote {output} ({to})", err=True)
    else:
        click.echo(text, nl=False)
    if kept:
        click.echo(f"note: {to} has no setting for {', '.join(kept)}: kept in the '# gpuplan:' comment line",
                   err=True)
