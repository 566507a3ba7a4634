"""`python -m train --config JOB.yaml [overrides]`: run the bundled fine-tuning recipe.

Every job spec field is also a flag (`--seq-len 512`, `--max-steps 10`), and every data field is
`--data-<name>` (`--data-path train.jsonl`). Exit codes (train.preemption): 0 done, 2 bad input
(one line on stderr, nothing written), 143 preempted by SIGTERM after saving a checkpoint — run the
same command again to resume.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from train.preemption import EXIT_BAD_INPUT, EXIT_OK, EXIT_PREEMPTED
from train.checks import check_raw_nulls, check_trainable
from train.spec import DataSpec, JobSpec, SpecError, load_spec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like the spec errors
        sys.stderr.write(f"error: {message}; see python -m train --help\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m train", description="Fine-tune a causal LM (QLoRA/LoRA/full) from a gpuplan job spec.")
    p.add_argument("--config", required=True, help="the job spec YAML")
    p.add_argument("--keep-checkpoints", type=int, default=None, help="complete checkpoints to keep (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f in dataclasses.fields(JobSpec):
        if f.name == "data":
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, metavar="V")
    for f in dataclasses.fields(DataSpec):
        p.add_argument(f"--data-{f.name.replace('_', '-')}", dest=f"data.{f.name}", default=None, metavar="V")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config = args.pop("config")
    keep = args.pop("keep_checkpoints")
    no_progress = args.pop("no_progress")
    if keep is not None and keep < 1:
        sys.stderr.write("error: --keep-checkpoints: must be at least 1; give e.g. 2\n")
        return EXIT_BAD_INPUT
    try:
        spec = load_spec(config, {k: v for k, v in args.items() if v is not None})
        check_raw_nulls(_raw_yaml(config))
        warnings = check_trainable(spec)
    except SpecError as exc:  # before torch is imported: bad specs fail in a fraction of a second
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return EXIT_BAD_INPUT
    if int(os.environ.get("RANK", 0)) == 0:
        for line in warnings:
            sys.stderr.write(f"warning: {line}\n")
    _quiet_libraries()
    from train.recipe import KEEP_CHECKPOINTS, Preempted, run

    try:
        result = run(spec, keep_checkpoints=keep or KEEP_CHECKPOINTS, progress=not no_progress)
    except SpecError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return EXIT_BAD_INPUT
    except Preempted as exc:
        sys.stderr.write(f"preempted: {exc}; run the same command again to resume\n")
        return EXIT_PREEMPTED
    s = result.summary
    if result.already_complete:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"already complete: {s.get('steps')} of {s.get('steps')} steps; summary at "
                  f"{os.path.join(result.output_dir, 'summary.json')}; nothing changed")
        return EXIT_OK
    if int(os.environ.get("RANK", 0)) == 0:
        tps = f"{s['tokens_per_s']:.0f}" if s["tokens_per_s"] else "n/a"
        print(f"done: {s['steps']} steps, final loss {s['final_loss']:.4f}, {tps} tokens/s -> {result.output_dir}")
    return EXIT_OK


def _raw_yaml(path: str) -> dict:
    """The job file as written (load_spec has already checked that it parses to a mapping)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return raw if isinstance(raw, dict) else {}


def _quiet_libraries() -> None:
    """Library chatter that is not ours: transformers' weight-loading bars and bitsandbytes' optional-kernel notice."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
