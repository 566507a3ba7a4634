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
    "plan": ("planner.cli.plan:plan", "Size a fine-tuning job: memory, speed, time, what fits, what it costs."),
    "prices": ("planner.cli.prices:prices", "List cloud GPU offers; refresh live prices; build the bundled snapshot."),
    "report": ("planner.cli.report:report", "Write a finance report (HTML, PDF, CSV, XLSX, JSON) for a job."),
    "launch": ("planner.cli.launch:launch", "Run the bundled training package on a cloud (SkyPilot) or local GPUs."),
    "check": ("planner.cli.check:check", "Compare a real run's summary.json (memory, tokens/s) with the plan."),
    "calibrate": ("planner.cli.calibrate:calibrate", "Fit the estimator to your runs' summary.json; plan applies it."),
    "simulate": ("planner.cli.simulate:simulate", "Simulate one training step on meta tensors: exact peak memory (needs torch)."),
    "export": ("planner.cli.export:export", "Write a job as an axolotl, LLaMA-Factory or TRL config."),
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
@click.version_option("0.2.0", prog_name="gpuplan")
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


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "..."


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the click group, turning input errors into one line and exit 2.

    Exit codes (README): 0 ok; 1 a runtime failure (network, a failed run) or an internal error; 2 bad input,
    a missing extra or missing credentials; 130 interrupted (Ctrl-C).
    """
    import os

    input_errors = _input_error_types()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from planner.inputs.flags import contradictory_switches

        pair = contradictory_switches(args)
        if pair:
            fail(f"{pair} contradict each other; give one of them")
        return cli.main(args=args, prog_name="gpuplan", standalone_mode=False)
    except input_errors as exc:  # type: ignore[misc]
        fail(_one_line(exc.one_line() if hasattr(exc, "one_line") else str(exc)))
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
        click.echo(f"error: {_one_line(message)}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else 2)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except ModuleNotFoundError as exc:
        from planner.inputs.extras import install_hint

        hint = install_hint(exc.name)
        if hint is None:
            raise
        fail(hint)
    except RecursionError:
        fail("input nested too deeply; check the files given")
    except Exception as exc:  # noqa: BLE001 - the last guard: a bug still ends in one line, never a traceback
        if os.environ.get("GPUPLAN_DEBUG"):
            raise
        click.echo(f"error: internal error ({type(exc).__name__}: {_one_line(str(exc), 200)}); please report it "
                   "with the command line (GPUPLAN_DEBUG=1 shows the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
