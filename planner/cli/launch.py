"""`gpuplan launch JOB.yaml --target cloud|local`: run the bundled trainer where the plan says (or you say).

Everything heavy (the planner's pricing, SkyPilot, the launcher) is imported inside the command, so loading
this module for `gpuplan --help` costs nothing. Bad input raises SpecError, which planner.cli turns into one
line and exit 2.
"""
from __future__ import annotations

import sys
from typing import Any

import click

PROVIDERS = ("aws", "gcp", "azure", "lambda", "runpod")


def _parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    from train.spec import SpecError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError("--set", f"{item!r} is not KEY=VALUE", "e.g. --set max_steps=10")
        out[key.strip()] = value
    return out


def _plan(spec: Any, target: str, local_profiles: tuple[str, ...], as_written: bool = False) -> dict[str, Any]:
    """The plan document for the target (all cloud offers, or the local profiles).

    Not narrowed by --provider/--region/--spot: launch filters the options itself, so a choice that leaves
    nothing can be named in the error.
    """
    from planner.plan import plan_job

    if target == "cloud":
        return plan_job(spec, include_local=False, as_written=as_written)
    return plan_job(spec, provider="local", local_profiles=list(local_profiles) or None, as_written=as_written)


def _relevant_warnings(plan: dict[str, Any], option: dict[str, Any] | None) -> tuple[list[str], int]:
    """Plan warnings about the chosen offer (its provider and instance type), and how many others there are."""
    warnings = list(dict.fromkeys(plan.get("warnings") or []))  # in order, each once
    if not option:
        return warnings, 0
    key = f"{option.get('provider')} {option.get('instance_type')} "
    mine = [w for w in warnings if w.startswith(key)]
    return mine, len(warnings) - len(mine)


@click.command("launch")
@click.argument("job_file", metavar="JOB.yaml")
@click.option("--target", type=click.Choice(["cloud", "local"]), default="cloud", show_default=True,
              help="A cloud GPU through SkyPilot, or your own hardware.")
@click.option("--provider", type=click.Choice(PROVIDERS), default=None, help="Cloud provider (default: the plan's pick).")
@click.option("--region", default=None, help="Cloud region (default: the plan's pick).")
@click.option("--gpu", default=None, help="GPU type, e.g. H100 or A100-80GB (default: the plan's pick).")
@click.option("--gpus", type=int, default=None, help="GPUs per node.")
@click.option("--spot/--on-demand", "spot", default=None,
              help="Spot as a managed job that resumes after preemption, or on-demand (default: the plan's pick).")
@click.option("--bucket", default=None, help="Output bucket: a name SkyPilot creates, or s3://… / gs://… URL.")
@click.option("--infra", default=None, help="Local only: direct, k8s/<context> or ssh/<pool> (default: detected).")
@click.option("--local-profile", "local_profiles", multiple=True, metavar="NAME|FILE",
              help="Local only: the cost profile of your hardware (a preset name or a YAML file).")
@click.option("--idle-minutes", type=int, default=10, show_default=True,
              help="On-demand clusters stop and tear down after this many idle minutes.")
@click.option("--max-steps", type=int, default=None, help="Override the spec's max_steps.")
@click.option("--output-dir", default=None, help="Override the spec's output_dir.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any spec field (repeatable).")
@click.option("--config-format", "config_format", default=None,
              type=click.Choice(("auto", "gpuplan", "axolotl", "llama-factory", "trl", "torchtune")),
              help="JOB's format: a gpuplan job spec or an axolotl, LLaMA-Factory, TRL or torchtune config "
                   "(default: detected from its keys)")
@click.option("--as-written", is_flag=True, default=False,
              help="Run the job's own micro batch, checkpointing, loss and parallelism (default: the configuration "
                   "the plan tuned for the chosen option).")
@click.option("--dry-run", is_flag=True, help="Print the SkyPilot task YAML (or the local command) and the cost; start nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def launch(job_file: str, target: str, provider: str | None, region: str | None, gpu: str | None,
           gpus: int | None, spot: bool | None, bucket: str | None, infra: str | None,
           local_profiles: tuple[str, ...], idle_minutes: int,
           max_steps: int | None, output_dir: str | None, sets: tuple[str, ...], dry_run: bool, yes: bool,
           config_format: str | None = None, as_written: bool = False) -> None:
    """Run JOB.yaml's fine-tuning job on a cloud GPU or on local GPUs.

    --dry-run needs no extra: it writes the SkyPilot task YAML itself and stages nothing. A real launch needs
    SkyPilot (`gpuplan[launch]`) for SkyPilot runs and the trainer (`gpuplan[train]`) to train on this machine;
    a missing one is named before anything starts (one line, exit 2)."""
    from launch.prepare import SPEC_NAME, format_cost, prepare_launch
    from planner.imports import load_job

    overrides = {**_parse_sets(sets), "max_steps": max_steps, "output_dir": output_dir, "gpu": gpu, "gpus": gpus}
    spec, imported = load_job(job_file, overrides, config_format=config_format)
    if target == "cloud" and local_profiles:
        from train.spec import SpecError

        raise SpecError("--local-profile", "applies to --target local only", "drop it, or use --target local")
    if target == "local" and (provider or region or spot):
        from train.spec import SpecError

        flag = "--provider" if provider else "--region" if region else "--spot"
        raise SpecError(flag, "applies to --target cloud only", "drop it, or use --target cloud")
    if target == "cloud" and not dry_run:  # before the plan: say what is missing first
        from launch.extras import LAUNCH_MODULES, require

        require("launch --target cloud", "launch", LAUNCH_MODULES)
    plan = _plan(spec, target, local_profiles, as_written)
    choice = dict(provider=provider, region=region, gpu=plan.get("gpu") if gpu else None, gpus=gpus, spot=spot,
                  bucket=bucket, infra=infra, local_profile=bool(local_profiles), idle_minutes=idle_minutes)
    prepared = prepare_launch(spec, plan, target, **choice, stage=False)  # decide; write nothing yet
    if not dry_run:
        from launch.extras import LAUNCH_MODULES, require, train_modules

        if prepared.mode == "direct":
            require("launch --target local", "train", train_modules(spec.method, spec.optimizer))
        else:
            require(f"launch --target {target}", "launch", LAUNCH_MODULES)
    where = prepared.local.infra if prepared.local and prepared.local.infra else (
        "this machine" if prepared.mode == "direct" else prepared.task_plan.infra if prepared.task_plan else "")
    rec = plan.get("recommendation") or {}
    click.echo(f"job:   {prepared.name} ({spec.model}, {spec.method}) -> {where} [{prepared.mode}]")
    if imported is not None:
        click.echo(f"from:  {imported.one_line()}")
    click.echo(f"cost:  {format_cost(prepared.option)}")
    if prepared.option and rec.get("reason") and all(
            prepared.option.get(k) == rec.get(k) for k in ("provider", "instance_type", "region", "spot")):
        click.echo(f"why:   {rec['reason']}")
    for note in prepared.notes:
        click.echo(f"note:  {note}")
    mine, others = _relevant_warnings(plan, prepared.option)
    for warning in mine:
        click.echo(f"warn:  {warning}")
    if others:
        click.echo(f"       ({others} other price-data warnings: see `gpuplan plan`)")

    if dry_run:
        click.echo(f"--- {SPEC_NAME} (shipped in the workdir; the trainer reads it) ---")
        click.echo(prepared.spec_yaml.rstrip())
    if prepared.mode == "direct":
        import shlex

        click.echo("run:   " + " ".join(shlex.quote(a) for a in prepared.argv or []))
    else:
        if dry_run:
            from launch.task import config_yaml, task_config

            text = config_yaml(task_config(prepared.task_plan), prepared.secrets)
            click.echo("--- SkyPilot task (sky launch / sky jobs launch takes this YAML) ---")
            click.echo(text.rstrip())
    if dry_run:
        click.echo(f"dry run: nothing started, nothing staged (a launch stages the job in {prepared.bundle})")
        return
    if not yes:
        click.confirm("Launch?", abort=True)
    prepared = prepare_launch(spec, plan, target, **choice)  # the same decision, now staged

    if prepared.mode == "direct":
        from launch.submit import run_direct

        rc = run_direct(prepared)
        click.echo(f"training exited with code {rc}; outputs in {spec.output_dir}", err=rc != 0)
        sys.exit(rc)
    from launch.submit import follow_up, submit_sky

    for line in follow_up(prepared):  # before streaming too, in case the user detaches
        click.echo(line)
    rc = submit_sky(prepared, plan, click.echo)
    for line in follow_up(prepared):
        click.echo(line)
    sys.exit(rc)
