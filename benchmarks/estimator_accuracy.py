"""Estimator accuracy on published measurements: predicted vs published, per row and overall.

    python benchmarks/estimator_accuracy.py [--csv PATH] [--markdown] [--write]

Prints, per row, the published and predicted peak memory (GiB) and throughput (tokens/s per GPU) with the
error, next to the two rules people use today (accelerate's 8 bytes/parameter; LLaMA-Factory's README
table); then the mean absolute percentage error for memory, the median absolute percentage error for
throughput, and the fit/OOM rows. Rows the planner cannot represent are listed with the reason.
--write stores the summary in planner/data/accuracy.json, which `gpuplan plan` quotes in every plan.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner.plan import ACCURACY_PATH  # noqa: E402
from planner.estimator.bands import QUANTILES  # noqa: E402
from planner.validation import leave_one_source_out, load_rows, score, summary  # noqa: E402

DEFAULT_CSV = Path(os.environ.get("GPUPLAN_SHARED", REPO.parent / "shared")) / "data" / "measurements" / "published.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--markdown", action="store_true", help="print the summary as a Markdown table (README)")
    ap.add_argument("--write", action="store_true", help=f"store the summary in {ACCURACY_PATH.relative_to(REPO)}")
    args = ap.parse_args(argv)
    if not args.csv.is_file():
        print(f"error: csv: {args.csv} not found; pass --csv or set GPUPLAN_SHARED", file=sys.stderr)
        return 2
    rows = load_rows(args.csv)
    scored = score(rows)
    summ = summary(scored)

    print(f"{'row':8} {'kind':10} {'published':>10} {'predicted':>10} {'error%':>8} {'8B/param%':>10} {'LF table%':>10}")
    for s in scored:
        fmt = (lambda v: f"{v!s:>10}") if s.kind == "fit" else (lambda v: f"{v:>10.1f}")
        err = "" if s.error_pct is None else f"{s.error_pct:>8.1f}"
        acc = "" if s.rule_accelerate_pct is None else f"{s.rule_accelerate_pct:>10.1f}"
        lf = "" if s.rule_llamafactory_pct is None else f"{s.rule_llamafactory_pct:>10.1f}"
        print(f"{s.id:8} {s.kind:10} {fmt(s.published)} {fmt(s.predicted)} {err:>8} {acc:>10} {lf:>10}")
    print("\nexcluded:")
    for r in rows:
        for kind, why in sorted(r.excluded.items()):
            print(f"  {r.id:8} {kind:10} {why}")
    print("\nleave-one-source-out (calibrated without the row's source):")
    for s in leave_one_source_out(scored):
        shown = s.predicted if s.kind == "fit" else f"{s.predicted} ({s.error_pct:+.1f}%)"
        print(f"  {s.id:8} {s.kind:10} {s.published!s:>10} {shown}")
    print("\nsummary:")
    for k, v in summ.items():
        print(f"  {k}: {v}")
    if args.markdown:
        print()
        print(markdown(summ))
    if args.write:
        payload = {"source": "benchmarks/estimator_accuracy.py on ../shared/data/measurements/published.csv",
                   "as_of": dt.date.today().isoformat(), "summary": summ,
                   "band": {"low_ratio": summ["band_low_ratio"], "high_ratio": summ["band_high_ratio"],
                            "quantiles": list(QUANTILES), "rows": summ["rows_memory"],
                            "method": "10th/90th percentile of published/predicted peak memory over the rows; the "
                                      "memory model fits no constant on them, so each ratio is out of sample"},
                   "rows": [s.__dict__ for s in scored]}
        tmp = ACCURACY_PATH.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, ACCURACY_PATH)
        print(f"\nwrote {ACCURACY_PATH.relative_to(REPO)}")
    return 0


def markdown(s: dict) -> str:
    n = s["rows_fit"]
    return "\n".join([
        "| | rows | as shipped | in-sample (calibrated on all rows) | leave-one-source-out | accelerate rule "
        "(8 B/param) | LLaMA-Factory table |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| peak memory, mean abs. % error | {s['rows_memory']} | **{s['memory_mape_pct']}%** | "
        f"{s['memory_mape_insample_pct']}% | {s['memory_mape_loso_pct']}% | "
        f"{s['memory_mape_accelerate_rule_pct']}% | {s['memory_mape_llamafactory_rule_pct']}% |",
        f"| throughput, median abs. % error | {s['rows_throughput']} | **{s['throughput_median_ape_pct']}%** | "
        f"{s['throughput_median_ape_insample_pct']}% | {s['throughput_median_ape_loso_pct']}% | - | - |",
        f"| fits / OOM rows called right | {n} | **{s['fit_correct']}/{n}** ({s['fit_tight']} tight) | "
        f"{s['fit_correct']}/{n} | {s['fit_correct_loso']}/{n} ({s['fit_tight_loso']} tight) | - | - |",
        f"| \"fits\" called on a run that was OOM | {n} | **{s['fits_called_on_oom']}** | {s['fits_called_on_oom']} | "
        f"{s['fits_called_on_oom_loso']} | - | - |",
    ])


if __name__ == "__main__":
    sys.exit(main())
