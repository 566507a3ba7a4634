"""`gpuplan prices`: list cloud GPU offers; `refresh` live prices; `build-snapshot` the bundled catalog."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import click

JSON_KEYS = ("provider", "instance_type", "region", "zone", "gpu", "gpu_count", "gpu_memory_gib", "vcpus", "ram_gib",
             "usd_per_hour", "spot_usd_per_hour", "usd_per_gpu_hour", "source", "as_of", "notes")


def _rows(offers) -> list[dict]:
    out = []
    for o in offers:
        d = o.to_dict()
        per_gpu = o.usd_per_gpu_hour()
        d["usd_per_gpu_hour"] = round(per_gpu, 6) if per_gpu is not None else None
        out.append({k: d[k] for k in JSON_KEYS})
    return out


def _table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False, header_style="bold")
    for col, just in (("GPU", "left"), ("N", "right"), ("provider", "left"), ("instance type", "left"),
                      ("region", "left"), ("$/h", "right"), ("spot $/h", "right"), ("$/GPU-h", "right"),
                      ("spot zone", "left")):
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(r["gpu"], str(r["gpu_count"]), r["provider"], r["instance_type"], r["region"],
                  f"{r['usd_per_hour']:.2f}" if r["usd_per_hour"] is not None else "-",
                  f"{r['spot_usd_per_hour']:.2f}" if r["spot_usd_per_hour"] is not None else "-",
                  f"{r['usd_per_gpu_hour']:.2f}" if r["usd_per_gpu_hour"] is not None else "-",
                  r["zone"] or "")
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze columns to 80
        console = Console(width=160)
    console.print(t)


@click.group("prices", invoke_without_command=True)
@click.option("--gpu", help="GPU type, any common spelling (H100, h100-80gb, 'RTX 4090').")
@click.option("--provider", help="aws, gcp, azure, lambda or runpod.")
@click.option("--region", help="Only this region.")
@click.option("--spot-only", is_flag=True, help="Only offers with a spot price.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_context
def prices(ctx: click.Context, gpu: str | None, provider: str | None, region: str | None, spot_only: bool,
           fmt: str) -> None:
    """List cloud GPU offers with on-demand and spot prices (cheapest per GPU-hour first)."""
    if ctx.invoked_subcommand is not None:
        return
    from pricing.catalog import load_offers

    s = load_offers(provider=provider, gpu=gpu, region=region, spot_only=spot_only)
    offers = sorted(s.offers, key=lambda o: (o.usd_per_gpu_hour() if o.usd_per_hour is not None else float("inf"),
                                             o.provider, o.instance_type, o.region))
    for w in s.warnings:
        if "days old" in w or "no valid date" in w or "unreadable" in w or "skipped" in w:
            click.echo(f"warning: {w}", err=True)
    rows = _rows(offers)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1, allow_nan=False))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(JSON_KEYS))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "notes": "; ".join(r["notes"])})
        click.echo(buf.getvalue(), nl=False)
    else:
        if not rows:
            click.echo("no offers match", err=True)
            return
        _table(rows)
        for p, meta in s.sources.items():
            click.echo(f"{p}: {meta['source']}, as of {meta['as_of']}", err=True)


@prices.command("build-snapshot")
@click.option("--from", "from_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of SkyPilot-format catalogs (<cloud>/vms.csv; commits read from its README table).")
@click.option("--as-of", help="Date the prices are valid for (YYYY-MM-DD; default: today).")
@click.option("--commit", "commits", multiple=True, metavar="CLOUD=SHA", help="Source commit for a cloud's catalog.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file (default: the bundled snapshot).")
def build_snapshot_cmd(from_dir: Path, as_of: str | None, commits: tuple[str, ...], output: Path | None) -> None:
    """Build the bundled offers snapshot from SkyPilot-format catalogs."""
    from pricing.cache import write_atomic
    from pricing.errors import PricingInputError
    from pricing.snapshot import BUNDLED, build_snapshot, drop_summary, dumps

    from pricing.cache import check_output_file

    check_output_file(output or BUNDLED, "--output")  # before the (slow) build, not after it
    commit_map = {}
    for c in commits:
        if "=" not in c:
            raise PricingInputError("--commit", f"{c!r} is not CLOUD=SHA", "e.g. --commit aws=e385a0d")
        k, v = c.split("=", 1)
        commit_map[k.strip()] = v.strip()
    data = build_snapshot(from_dir, as_of=as_of, commits=commit_map)
    out = output or BUNDLED
    write_atomic(out, dumps(data))
    click.echo(f"wrote {len(data.offers)} offers to {out}")
    for p, meta in data.providers.items():
        n = sum(1 for o in data.offers if o.provider == p)
        click.echo(f"  {p}: {n} offers, {meta['source']}, as of {meta['as_of']}")
    click.echo(f"dropped or corrected {len(data.dropped)} values:")
    for line in drop_summary(data.dropped):
        click.echo(f"  {line}")
    for w in data.warnings:
        click.echo(f"warning: {w}", err=True)


@prices.command("refresh")
@click.option("--provider", required=True, type=click.Choice(["aws", "gcp"]))
@click.option("--region", "regions", multiple=True, help="Region(s) to refresh (default: the common GPU regions).")
@click.option("--endpoint-url", help="Override the price API endpoint (AWS Price List / Cloud Billing).")
@click.option("--ec2-endpoint-url", help="Override the EC2 endpoint (AWS spot prices).")
@click.option("--compute-endpoint-url", help="Override the Compute Engine endpoint (GCP machine types).")
@click.option("--project", help="GCP project for machine-type lookups (default: $GOOGLE_CLOUD_PROJECT).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per API call.")
def refresh_cmd(provider: str, regions: tuple[str, ...], endpoint_url: str | None, ec2_endpoint_url: str | None,
                compute_endpoint_url: str | None, project: str | None, timeout: float) -> None:
    """Fetch live prices into the user cache (~/.cache/gpuplan/prices; GPUPLAN_CACHE_DIR overrides)."""
    from pricing.errors import RefreshError
    from pricing.refresh import refresh

    try:
        result = refresh(provider, regions=list(regions) or None, endpoint_url=endpoint_url,
                         ec2_endpoint_url=ec2_endpoint_url, compute_endpoint_url=compute_endpoint_url,
                         project=project, timeout=timeout, progress=True)
    except RefreshError as exc:
        click.echo(f"error: {provider} refresh failed: {exc}; kept the last good catalog", err=True)
        sys.exit(1)
    click.echo(f"{provider}: {len(result.offers)} offers written to {result.path} (as of {result.as_of})")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
