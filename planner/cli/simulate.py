"""`gpuplan simulate JOB`: peak GPU memory of one training step of the bundled trainer, simulated on meta tensors.

Needs the `train` extra (torch, transformers, peft, bitsandbytes); without it, one line naming the install
command and exit 2. Output: the memory section of a plan (same keys as `gpuplan plan --format json`'s
`memory`) plus peak_moment, peak_op, fragmentation, moments_gib and estimator.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from planner.cli.plan import spec_from_cli, spec_options


@click.command("simulate")
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@spec_options
@click.option("--full-depth", is_flag=True, default=False,
              help="simulate every decoder layer instead of 2 and 4 layers extrapolated (slower, exact)")
@click.option("--no-cache", is_flag=True, default=False, help="re-run even when this configuration is cached")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="output format")
def simulate(job: str | None, full_depth: bool, no_cache: bool, fmt: str, **kwargs: Any) -> None:
    """Simulate one training step of the bundled trainer (its model build, k-bit preparation, LoRA, dtypes,
    checkpointing, attention, loss and optimizer) on meta tensors and report its peak GPU memory.
    JOB is a YAML job spec; flags override it."""
    from planner.estimator.simulate import require_torch, simulate_memory

    spec = spec_from_cli(job, kwargs)
    require_torch()
    doc = simulate_memory(spec, spec.gpu, spec.world_size, full_depth=full_depth, use_cache=not no_cache)
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2 if sys.stdout.isatty() else None) + "\n")
        return
    est = doc["estimator"]
    how = "extrapolated from " + " and ".join(map(str, est["layers_simulated"])) + " layers" if est["extrapolated"] \
        else "all layers simulated"
    click.echo(f"{spec.model}  {spec.method}  seq {spec.seq_len} x batch {spec.batch_size}  "
               f"{spec.parallel} x {est['world']}  ({how}{', cached' if est.get('cached') else ''})")
    click.echo(f"peak allocated {doc['peak_allocated_gib']:.2f} GiB at {doc['peak_moment']} ({doc['peak_op']}); "
               f"reserved {doc['peak_reserved_gib']:.2f} GiB (fragmentation {doc['fragmentation']:.1%})")
    if doc.get("capacity_gib") is not None:
        verdict = "fits" if doc["fits"] else "does NOT fit"
        click.echo(f"{spec.gpu}: {doc['capacity_gib']:.1f} GiB, headroom {doc['headroom_gib']:.2f} GiB: {verdict}")
    parts = ", ".join(f"{k} {v:.2f}" for k, v in doc["breakdown_gib"].items() if v)
    click.echo(f"at the peak (GiB): {parts}")
    click.echo("moments (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in doc["moments_gib"].items()))
    for line in [est.get("sharding")] + list(doc.get("notes") or []):
        if line:
            click.echo(f"note: {line}")
