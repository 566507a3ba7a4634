"""`gpuplan plan`: size and price a fine-tuning job.

Flags mirror the job spec's fields (`--seq-len` -> `seq_len`) and override the YAML file. Choices are
checked by the job spec, so every bad value gets the same one-line "field: problem; fix" message.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import click

from train.spec import JobSpec, SpecError, apply_overrides

# (flag, spec field, click type, help)
SPEC_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--name", "name", str, "job name (shown in reports)"),
    ("--model", "model", str, "registry id, hub id, config.json or model folder"),
    ("--method", "method", str, "full | lora | qlora"),
    ("--lora-r", "lora_r", int, "LoRA rank"),
    ("--lora-alpha", "lora_alpha", int, "LoRA alpha"),
    ("--lora-targets", "lora_targets", str, "all-linear, or module names separated by commas"),
    ("--seq-len", "seq_len", int, "sequence length (tokens)"),
    ("--batch-size", "batch_size", int, "micro batch per GPU"),
    ("--grad-accum", "grad_accum", int, "gradient accumulation steps"),
    ("--optimizer", "optimizer", str, "adamw | adamw-8bit | paged-adamw-8bit | sgd"),
    ("--precision", "precision", str, "bf16 | bf16-mixed | fp16-mixed | fp32"),
    ("--attention", "attention", str, "sdpa | flash | eager"),
    ("--dataset-tokens", "dataset_tokens", int, "training tokens per epoch"),
    ("--dataset-examples", "dataset_examples", int, "examples per epoch (with --mean-example-tokens)"),
    ("--mean-example-tokens", "mean_example_tokens", int, "mean tokens per example"),
    ("--epochs", "epochs", float, "epochs"),
    ("--gpu", "gpu", str, "GPU type (e.g. H100, A100-80GB, RTX4090); default: every type"),
    ("--gpus", "gpus", int, "GPUs per node"),
    ("--nodes", "nodes", int, "nodes"),
    ("--parallel", "parallel", str, "ddp | fsdp | fsdp-offload | zero3"),
    ("--stack", "stack", str, "training stack that runs the job: gpuplan (the bundled trainer), hf-trainer, "
                              "hf-trainer-2024, trl, axolotl, llama-factory, torchtune, torchtune-2024, litgpt"),
]
BOOL_FLAGS: list[tuple[str, str, str]] = [
    ("gradient-checkpointing", "gradient_checkpointing", "recompute activations in backward"),
    ("packing", "packing", "pack examples into full sequences"),
    ("chunked-loss", "chunked_loss", "compute the loss in vocabulary chunks"),
    ("compile", "compile", "torch.compile the model"),
    ("double-quant", "double_quant", "QLoRA double quantization"),
]


CONFIG_FORMATS = ("auto", "gpuplan", "axolotl", "llama-factory", "trl", "torchtune")


def config_format_option(func: Any) -> Any:
    """--config-format: how to read JOB (shared by plan, report and launch)."""
    return click.option("--config-format", "config_format", type=click.Choice(CONFIG_FORMATS), default=None,
                        help="JOB's format: a gpuplan job spec or an axolotl, LLaMA-Factory, TRL or torchtune "
                             "config (default: auto, detected from its keys)")(func)


def spec_options(func: Any) -> Any:
    """Decorate a click command with the job spec flags (shared by plan, report and launch)."""
    func = config_format_option(func)
    for flag, _field, typ, help_ in reversed(SPEC_FLAGS):
        func = click.option(flag, type=typ, default=None, help=help_)(func)
    for name, _field, help_ in reversed(BOOL_FLAGS):
        func = click.option(f"--{name}/--no-{name}", default=None, help=help_)(func)
    return func


def pricing_options(func: Any) -> Any:
    """Decorate a click command with the comparison filters (shared by plan and report)."""
    opts = [
        click.option("--provider", multiple=True, help="only these providers (aws, gcp, azure, lambda, runpod, local)"),
        click.option("--region", default=None, help="only this cloud region"),
        click.option("--spot/--no-spot", default=None, help="only spot / only on-demand (default: both)"),
        click.option("--max-hourly", type=float, default=None, help="max USD per hour for all GPUs"),
        click.option("--deadline-hours", type=float, default=None, help="finish within this many hours"),
        click.option("--budget", type=float, default=None, help="max USD for the job"),
        click.option("--local-profile", multiple=True, help="local cost profile: preset name or YAML (repeatable)"),
        click.option("--no-local", is_flag=True, default=False, help="leave local hardware out of the comparison"),
        click.option("--runs-per-month", type=float, default=None,
                     help="derive local utilisation from a workload: this job N times a month"),
        click.option("--other-use-hours", type=float, default=0.0, show_default=True,
                     help="other busy hours a month on the local GPUs (with --runs-per-month)"),
        click.option("--horizon-months", type=int, default=None,
                     help="months the --runs-per-month cost comparison covers (cloud, local, hybrid; default 36)"),
        click.option("--allow-outlier-prices", is_flag=True, default=False,
                     help="rank offers whose price is far below the same offer's other regions (usually no capacity)"),
        click.option("--allow-stale-prices", is_flag=True, default=False,
                     help="rank offers from old or older-format price catalogs"),
        click.option("--as-written", is_flag=True, default=False,
                     help="price the job's own micro batch, checkpointing, loss and parallelism on every option "
                          "(default: the fastest that fits each GPU type and count, same global batch)"),
        click.option("--startup", "startup", multiple=True, metavar="KEY=VALUE",
                     help="start-up assumption (repeatable), e.g. setup_minutes=1, prebuilt_image=true, "
                          "weights_cached=true, provision_minutes=2, download_mb_per_s=300"),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def spec_from_cli(job: str | None, kwargs: dict[str, Any]) -> JobSpec:
    """The job spec from an optional YAML file (a gpuplan job spec or another tool's config) plus flags
    (flags win)."""
    return spec_and_import_from_cli(job, kwargs)[0]


def spec_and_import_from_cli(job: str | None, kwargs: dict[str, Any]) -> tuple[JobSpec, Any]:
    """(job spec, planner.imports.ImportReport or None when JOB is a gpuplan job spec or absent)."""
    overrides: dict[str, Any] = {}
    for _flag, field, _typ, _help in SPEC_FLAGS:
        if kwargs.get(field) is not None:
            overrides[field] = kwargs[field]
    for _name, field, _help in BOOL_FLAGS:
        if kwargs.get(field) is not None:
            overrides[field] = kwargs[field]
    fmt = kwargs.get("config_format")
    if job is not None:
        from planner.imports import load_job

        return load_job(job, overrides, config_format=fmt)
    if fmt not in (None, "auto", "gpuplan"):
        raise SpecError("--config-format", "needs a config file", "give JOB, or drop --config-format")
    if not overrides.get("model"):
        raise SpecError("model", "missing", "give a job file (gpuplan plan JOB.yaml) or --model")
    return apply_overrides(JobSpec(), overrides, check=True), None


def plan_from_cli(job: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    from planner.inputs.flags import check_plan_flags, check_spec_for_gpu
    from planner.plan import plan_job

    check_plan_flags(kwargs)
    spec, imported = spec_and_import_from_cli(job, kwargs)
    check_spec_for_gpu(spec)
    providers = list(kwargs.get("provider") or []) or None
    doc = plan_job(spec, provider=providers, region=kwargs.get("region"), spot=kwargs.get("spot"),
                   max_hourly=kwargs.get("max_hourly"), deadline_hours=kwargs.get("deadline_hours"),
                   budget=kwargs.get("budget"), local_profiles=list(kwargs.get("local_profile") or []) or None,
                   include_local=not kwargs.get("no_local"), runs_per_month=kwargs.get("runs_per_month"),
                   other_use_hours=kwargs.get("other_use_hours") or 0.0,
                   allow_outlier_prices=bool(kwargs.get("allow_outlier_prices")),
                   allow_stale_prices=bool(kwargs.get("allow_stale_prices")),
                   as_written=bool(kwargs.get("as_written")), horizon_months=kwargs.get("horizon_months"),
                   startup=parse_startup(kwargs.get("startup") or ()))
    if imported is not None:
        doc["import"] = imported.to_dict()
        doc["warnings"] = [f"{m.field} missing: {m.fix}" for m in imported.missing] + doc.get("warnings", [])
    return doc


def parse_startup(values: Any) -> dict[str, str]:
    """`--startup KEY=VALUE` pairs (values are checked by pricing.startup)."""
    from pricing.errors import PricingInputError

    out: dict[str, str] = {}
    for item in values:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip() or not value.strip():
            raise PricingInputError("startup", f"{item!r} is not KEY=VALUE", "e.g. --startup setup_minutes=1")
        out[key.strip()] = value.strip()
    return out


@click.command("plan")
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@spec_options
@pricing_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", help="output format")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="also write the finance report (HTML, PDF, CSV, XLSX, JSON) into this folder")
@click.option("--top", type=int, default=10, show_default=True, help="options shown in the table")
@click.option("--simulate", "simulate", is_flag=True, default=False,
              help="with --gpu: simulate the memory section (one step of the bundled trainer on meta tensors; "
                   "needs torch); the rest stays analytic")
def plan(job: str | None, fmt: str, report_dir: str | None, top: int, simulate: bool, **kwargs: Any) -> None:
    """Size a fine-tuning job: peak memory, speed, time and cost on each GPU type and count, what fits, and what
    to change when it doesn't. JOB is a YAML job spec (see examples/) or your axolotl, LLaMA-Factory, TRL or
    torchtune config (see examples/imports/); flags override it."""
    from planner.inputs.flags import check_plan_flags

    check_plan_flags({"top": top})
    if report_dir is not None:  # an empty --report '' is refused, not read as "no report"
        from pricing.cache import check_output_dir

        check_output_dir(report_dir, "--report")
    if simulate:
        from planner.estimator.simulate import require_torch

        if not spec_from_cli(job, kwargs).gpu:
            raise SpecError("--simulate", "needs one GPU type", "add --gpu (e.g. --gpu H100)")
        require_torch()
    doc = plan_from_cli(job, kwargs)
    if simulate:
        apply_simulation(doc, spec_from_cli(job, kwargs))
    if report_dir:
        from planner.report import write_report

        write_report(doc, report_dir)
    out = sys.stdout
    if fmt == "json":
        # Pretty for a person at a terminal; compact for scripts (json.dumps without indent is the one path
        # that uses the C encoder: ~10x faster on a plan with a thousand options). The plan document is a
        # tree of plain dicts and lists (it may share a sub-dict, never contain itself), so the encoder's
        # cycle check only costs time: ~25 % of the encoding of a 1.3 MB plan. Same bytes either way.
        # allow_nan=False: the last guard; non-finite numbers are refused where they enter.
        out.write(json.dumps(doc, indent=2 if out.isatty() else None, check_circular=False, allow_nan=False) + "\n")
    elif fmt == "csv":
        out.write(plans_csv(doc))
    else:
        from planner.cli.plan_table import print_plan

        if doc.get("import"):
            from planner.imports.report import summary_line

            click.echo(summary_line(doc["import"]))
        source = str(doc.get("model", {}).get("source") or "")
        if source.startswith("registry entry"):
            click.echo(f"model {doc['model'].get('name')}: sized as the {source}")
        print_plan(doc, top=top)
    warnings = doc.get("warnings", [])
    flagged = [w for w in warnings if "flagged" in w]
    for w in (w for w in warnings if w not in flagged):
        click.echo(f"warning: {w}", err=True)
    if flagged:
        click.echo(f"warning: {len(flagged)} catalog price ranges look suspect (listed under 'warnings' in "
                   "--format json)", err=True)


def apply_simulation(doc: dict[str, Any], spec: JobSpec) -> None:
    """Replace the plan's memory section (one --gpu plan) with the simulated one; the analytic one is kept
    under `memory_analytic`, and `estimator` says which parts are simulated."""
    from planner.estimator.simulate import simulate_memory

    sim = simulate_memory(spec, doc["gpu"], doc["gpus"])
    analytic = doc["memory"]
    memory = {k: v for k, v in sim.items() if k not in ("estimator", "fits", "notes", "simulation_seconds")}
    for key in analytic:  # keys the analytic model adds (band_gib ...) stay, the simulated values win
        memory.setdefault(key, analytic[key])
    doc["memory_analytic"] = analytic
    doc["memory"] = memory
    doc["fits"] = sim["fits"]
    doc["estimator"] = dict(sim["estimator"], scope="memory of this GPU plan is simulated; speed, limits, "
                                                   "suggestions and the price comparison stay analytic")
    how = "extrapolated from 2 and 4 layers" if sim["estimator"]["extrapolated"] else "all layers"
    doc.setdefault("notes", []).append(
        f"memory simulated ({how}): peak {sim['peak_allocated_gib']:.2f} GiB allocated at {sim['peak_moment']} "
        f"({sim['peak_op']}), {sim['peak_reserved_gib']:.2f} GiB reserved; analytic "
        f"{analytic['peak_allocated_gib']:.2f} GiB")
    for note in sim.get("notes") or []:
        doc["notes"].append(note)


CSV_COLUMNS = ["gpu", "gpus", "nodes", "fits", "peak_allocated_gib", "peak_reserved_gib", "capacity_gib",
               "tokens_per_s", "mfu", "step_time_s", "hours", "max_batch_size", "max_seq_len", "min_gpus"]


def gpu_plans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-GPU entries of a plan document (one with --gpu, every type x count without)."""
    return doc["gpus"] if isinstance(doc.get("gpus"), list) else [doc]


def plans_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for p in gpu_plans(doc):
        m, t, lim = p["memory"], p["throughput"], p["limits"]
        w.writerow([p["gpu"], p["gpus"], p["nodes"], p["fits"], m["peak_allocated_gib"], m["peak_reserved_gib"],
                    m["capacity_gib"], t["tokens_per_s"], t["mfu"], t["step_time_s"],
                    p["time"]["hours"] if p.get("time") else "", lim["max_batch_size"] or "", lim["max_seq_len"] or "",
                    lim["min_gpus"] or ""])
    return buf.getvalue()
