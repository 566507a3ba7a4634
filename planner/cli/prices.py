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


# (header, key, justify, priority): priority columns are never truncated (min_width = their longest value);
# when the terminal is too narrow for all, the optional ones go first, then instance type and region fold.
_TABLE_COLUMNS = (
    ("GPU", "gpu", "left", True), ("N", "gpu_count", "right", True), ("provider", "provider", "left", True),
    ("instance type", "instance_type", "left", True), ("region", "region", "left", True),
    ("$/h", "usd_per_hour", "right", True), ("spot $/h", "spot_usd_per_hour", "right", True),
    ("$/GPU-h", "usd_per_gpu_hour", "right", True), ("spot zone", "zone", "left", False),
)
_GAP = 2  # between two columns: the box's blank divider and one space of right padding (no outer edge)


def _cell(r: dict, key: str) -> str:
    v = r.get(key)
    if key in ("usd_per_hour", "spot_usd_per_hour", "usd_per_gpu_hour"):
        return f"{v:.2f}" if v is not None else "-"
    return "" if v is None else str(v)


def _table(rows: list[dict], console=None) -> None:
    """The offers table, readable at 100 columns: priority columns keep their full width; the spot zone is
    dropped when it does not fit (it is in --format json/csv)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if console is None:
        import os

        console = Console()
        if not console.is_terminal and not os.environ.get("COLUMNS"):  # piped: do not squeeze columns to 80
            console = Console(width=160)
    cells = [[_cell(r, key) for _h, key, _j, _p in _TABLE_COLUMNS] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (h, _k, _j, _p) in enumerate(_TABLE_COLUMNS)]
    keep = list(range(len(_TABLE_COLUMNS)))
    while sum(widths[i] for i in keep) + _GAP * (len(keep) - 1) > console.width:
        optional = [i for i in keep if not _TABLE_COLUMNS[i][3]]
        if not optional:
            break
        keep.remove(optional[-1])
    # Narrower than the priority columns (under ~100): instance type and region fold onto a second line rather
    # than any column being cut or dropped; GPU names, counts and prices never wrap.
    squeeze = sum(widths[i] for i in keep) + _GAP * (len(keep) - 1) > console.width
    t = Table(show_lines=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
              show_edge=False, padding=(0, 1, 0, 0))
    for i in keep:
        header, key, just, priority = _TABLE_COLUMNS[i]
        if squeeze and key in ("instance_type", "region"):
            t.add_column(header, justify=just, overflow="fold")
        else:
            t.add_column(header, justify=just, no_wrap=True, min_width=widths[i] if priority else None,
                         overflow="ellipsis")
    for c in cells:
        t.add_row(*[c[i] for i in keep])
    console.print(t)
    if len(keep) < len(_TABLE_COLUMNS):
        gone = ", ".join(_TABLE_COLUMNS[i][0] for i in range(len(_TABLE_COLUMNS)) if i not in keep)
        console.print(f"({gone} left out at {console.width} columns; see --format csv)", style="dim")


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
@click.option("-o", "--output", type=str, help="Output file (default: the bundled snapshot).")
def build_snapshot_cmd(from_dir: Path, as_of: str | None, commits: tuple[str, ...], output: str | None) -> None:
    """Build the bundled offers snapshot from SkyPilot-format catalogs."""
    from pricing.cache import write_atomic
    from pricing.errors import PricingInputError
    from pricing.snapshot import BUNDLED, build_snapshot, drop_summary, dumps

    from pricing.cache import check_output_file

    # before the (slow) build, not after it; an empty -o '' is refused, not read as the current folder
    out = check_output_file(BUNDLED if output is None else output, "--output")
    commit_map = {}
    for c in commits:
        if "=" not in c:
            raise PricingInputError("--commit", f"{c!r} is not CLOUD=SHA", "e.g. --commit aws=e385a0d")
        k, v = c.split("=", 1)
        commit_map[k.strip()] = v.strip()
    data = build_snapshot(from_dir, as_of=as_of, commits=commit_map)
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
@click.option("--attempts", type=click.IntRange(1, 20), default=5, show_default=True,
              help="Tries per API call (throttling, 5xx and timeouts are retried with backoff).")
def refresh_cmd(provider: str, regions: tuple[str, ...], endpoint_url: str | None, ec2_endpoint_url: str | None,
                compute_endpoint_url: str | None, project: str | None, timeout: float, attempts: int) -> None:
    """Fetch live prices into the user cache (~/.cache/gpuplan/prices; GPUPLAN_CACHE_DIR overrides).

    Exit 2 when the provider's SDK or credentials are missing (one line with the fix), 1 when the provider
    cannot be reached or answers badly; either way the cached catalog, if any, is left as it was."""
    from pricing.cache import live_file
    from pricing.errors import RefreshError
    from pricing.refresh import refresh

    try:
        result = refresh(provider, regions=list(regions) or None, endpoint_url=endpoint_url,
                         ec2_endpoint_url=ec2_endpoint_url, compute_endpoint_url=compute_endpoint_url,
                         project=project, timeout=timeout, attempts=attempts, progress=True)
    except RefreshError as exc:
        previous = live_file(provider)
        kept = (f"kept the last good catalog ({previous})" if previous.is_file()
                else "no live catalog was written; plans use the bundled snapshot")
        click.echo(f"error: {provider} refresh failed: {exc}; {kept}", err=True)
        sys.exit(1)
    click.echo(f"{provider}: {len(result.offers)} offers written to {result.path} (as of {result.as_of})")
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
