"""`gpuplan report`: plan a job (the same flags as `gpuplan plan`) and write its finance report folder:
report.html, report.pdf, report.json, options.csv, assumptions.csv, report.xlsx.

`--from report.json` rewrites the report from a saved plan document without planning again.
"""
from __future__ import annotations

from typing import Any

import click

# Job spec flags the planner reads (the trainer-only fields are left to the spec file).
SPEC_FLAGS: tuple[tuple[str, type | click.ParamType, str], ...] = (
    ("model", str, "Model: registry id, config.json or model folder."),
    ("name", str, "Job name shown on the report."),
    ("method", click.Choice(["full", "lora", "qlora"]), "Fine-tuning method."),
    ("lora-r", int, "LoRA rank."),
    ("lora-alpha", int, "LoRA alpha."),
    ("lora-targets", str, "all-linear or a comma-separated list of module names."),
    ("seq-len", int, "Sequence length (tokens)."),
    ("batch-size", int, "Micro batch per GPU."),
    ("grad-accum", int, "Gradient accumulation steps."),
    ("optimizer", click.Choice(["adamw", "adamw-8bit", "paged-adamw-8bit", "sgd"]), "Optimizer."),
    ("precision", click.Choice(["bf16", "bf16-mixed", "fp16-mixed", "fp32"]), "Precision."),
    ("attention", click.Choice(["sdpa", "flash", "eager"]), "Attention kernel."),
    ("dataset-tokens", int, "Tokens per epoch."),
    ("dataset-examples", int, "Examples per epoch (with --mean-example-tokens)."),
    ("mean-example-tokens", int, "Mean tokens per example."),
    ("epochs", float, "Epochs."),
    ("gpu", str, "GPU type (plan only this type)."),
    ("gpus", int, "GPUs per node."),
    ("nodes", int, "Nodes."),
    ("parallel", click.Choice(["ddp", "fsdp", "fsdp-offload", "zero3"]), "Multi-GPU strategy."),
)
BOOL_FLAGS = (("gradient-checkpointing", "Activation recomputation."), ("packing", "Pack examples to seq-len."))


def _spec_options(f: Any) -> Any:
    for name, kind, help_text in reversed(SPEC_FLAGS):
        f = click.option(f"--{name}", name.replace("-", "_"), type=kind, default=None, help=help_text)(f)
    for name, help_text in reversed(BOOL_FLAGS):
        f = click.option(f"--{name}/--no-{name}", name.replace("-", "_"), default=None, help=help_text)(f)
    return f


@click.command("report")
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@_spec_options
@click.option("--provider", help="Only this cloud (aws, gcp, azure, lambda, runpod, local).")
@click.option("--region", help="Only this region.")
@click.option("--spot/--no-spot", default=None, help="Spot only / on-demand only (default: both).")
@click.option("--max-hourly", type=float, help="Most USD per hour for all instances together.")
@click.option("--deadline-hours", type=float, help="Result needed within this many hours.")
@click.option("--budget", type=float, help="Most USD for the job.")
@click.option("--local-profile", "local_profiles", multiple=True,
              help="Local hardware profile: a bundled preset name or a YAML file (repeatable).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the report into (created if needed).")
@click.option("--from", "from_json", type=click.Path(dir_okay=False),
              help="Regenerate from a saved report.json instead of planning.")
def report(job: str | None, provider: str | None, region: str | None, spot: bool | None,
           max_hourly: float | None, deadline_hours: float | None, budget: float | None,
           local_profiles: tuple[str, ...], out_dir: str, from_json: str | None, **spec_flags: Any) -> None:
    """Write a finance report (HTML, PDF, JSON, CSV, XLSX) for JOB.yaml, or regenerate one with --from."""
    from planner.report import load_document, write_report
    from planner.report.pdf import ReportDependencyError
    from train.spec import SpecError

    if from_json:
        given = [f"--{k.replace('_', '-')}" for k, v in spec_flags.items() if v is not None]
        if job or given or local_profiles or any(v is not None for v in (provider, region, spot, max_hourly,
                                                                          deadline_hours, budget)):
            raise SpecError("--from", "regenerates a saved plan as it is",
                            "drop JOB and the plan flags, or drop --from to plan again")
        doc = load_document(from_json)
    else:
        doc = plan_document(job, spec_flags, provider=provider, region=region, spot=spot, max_hourly=max_hourly,
                            deadline_hours=deadline_hours, budget=budget, local_profiles=local_profiles)
    try:
        written = write_report(doc, out_dir)
    except ReportDependencyError as exc:
        raise click.ClickException(str(exc)) from None
    rec = doc.get("recommendation")
    click.echo(f"wrote {len(written)} files to {out_dir}: {', '.join(sorted(written))}")
    if rec:
        click.echo(f"recommended: {rec.get('reason', '')}")
    else:
        click.echo("no recommendation: no option fits within the given limits")


def plan_document(job: str | None, spec_flags: dict[str, Any], *, local_profiles: tuple[str, ...] = (),
                  **plan_kwargs: Any) -> dict[str, Any]:
    """Load the spec (file + flags, flags win) and plan it: the same document `gpuplan plan --format json` prints."""
    from planner.plan import plan_job
    from train.spec import load_spec, spec_from_dict

    overrides = {k: v for k, v in spec_flags.items() if v is not None}
    spec = load_spec(job, overrides) if job else spec_from_dict(overrides)
    return plan_job(spec, local_profiles=list(local_profiles) or None, **plan_kwargs)
