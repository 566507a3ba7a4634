"""The `gpuplan` command line.

Subcommands live in their own modules and are imported only when invoked, so `gpuplan plan` never pays
for the launch or report code (let alone SkyPilot, pandas or torch).

Bad input anywhere ends the same way: one line on stderr naming the field and the fix, exit code 2,
no traceback. Input errors are `train.spec.SpecError` (job spec, model, GPU, flags) and
`pricing.errors.PricingInputError` (price sources, local profiles); both carry `one_line()`.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# name -> ("module:attribute" of a click.Command, one-line summary). The summaries let `gpuplan --help` list
# the commands without importing any of them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("planner.cli_plan:plan", "Size a fine-tuning job: memory, speed, time, what fits, what it costs."),
    "prices": ("planner.cli_prices:prices", "List cloud GPU offers; refresh live prices; build the bundled snapshot."),
    "report": ("planner.cli_report:report", "Write a finance report (HTML, PDF, CSV, XLSX, JSON) for a job."),
    "launch": ("planner.cli_launch:launch", "Run the bundled training package on a cloud (SkyPilot) or local GPUs."),
    "check": ("planner.cli_check:check", "Compare a real run's summary.json (memory, tokens/s) with the plan."),
    "calibrate": ("planner.cli_calibrate:calibrate", "Fit the estimator to your runs' summary.json; plan applies it."),
    "simulate": ("planner.cli_simulate:simulate", "Simulate one training step on meta tensors: exact peak memory (needs torch)."),
    "export": ("planner.cli_export:export", "Write a job as an axolotl, LLaMA-Factory or TRL config."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)])

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module_name, attr = SUBCOMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="gpuplan")
def cli() -> None:
    """Plan, price, launch and justify LLM fine-tuning on cloud or local GPUs."""


def fail(message: str) -> None:
    """Print one error line and exit 2 (bad input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _input_error_types() -> tuple[type[BaseException], ...]:
    from train.spec import SpecError

    types: list[type[BaseException]] = [SpecError]
    try:
        from pricing.errors import PricingInputError

        types.append(PricingInputError)
    except ImportError:  # pricing not installed in some stripped-down checkout
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the click group, turning input errors into one line and exit 2."""
    input_errors = _input_error_types()
    try:
        return cli.main(args=argv, prog_name="gpuplan", standalone_mode=False)
    except input_errors as exc:  # type: ignore[misc]
        fail(exc.one_line() if hasattr(exc, "one_line") else str(exc))
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("interrupted", err=True)
            sys.exit(130)
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # click's own usage errors (unknown option, bad choice): one line, exit 2.
        message = exc.format_message().splitlines()[0] if exc.format_message() else str(exc)
        param = getattr(exc, "param", None)
        if param is not None and getattr(param, "opts", None) and param.opts[0] not in message:
            message = f"{param.opts[0]}: {message}"
        click.echo(f"error: {message}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
