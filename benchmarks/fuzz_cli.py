"""Fuzz the `gpuplan` CLI with a few hundred bad or edge-case invocations, each a fresh subprocess.

    python benchmarks/fuzz_cli.py [--root CHECKOUT] [--timeout 20] [--jobs 2] [--only CATEGORY]

Counts per category:
- traceback : a Python traceback on stderr, an "internal error" line, or an exit code other than 0, 2 or 130;
- hang      : the command ran past --timeout seconds (a FIFO read, a YAML bomb, a 50 MB spec ...);
- accepted  : a case that must be refused (a contradiction, an out-of-range number, NaN) exited 0;
- bad_json  : `--format json` printed something strict JSON cannot read (NaN, Infinity);
- silent    : a bad price cache / catalog was skipped without a warning on stderr.
`--root` runs another checkout (e.g. a second worktree at the base commit) to get a before/after count.
Everything runs under a throw-away HOME / GPUPLAN_CACHE_DIR; nothing outside a temp folder is touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "meta-llama/Llama-3.1-8B"


@dataclass
class Case:
    category: str
    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    refuse: bool = False  # must exit 2
    json_out: bool = False  # stdout must be strict JSON when exit 0
    warn: bool = False  # stderr must carry a warning when exit 0


def _w(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
        + "model: meta-llama/Llama-3.1-8B\nlora_targets: *i\n")


def flag_cases() -> list[Case]:
    out = []
    numeric = ["--lora-r", "--lora-alpha", "--seq-len", "--batch-size", "--grad-accum", "--dataset-tokens",
               "--dataset-examples", "--mean-example-tokens", "--epochs", "--gpus", "--nodes"]
    values = ["0", "-1", "9223372036854775808", "1e309", "nan", "inf", "-inf", "1e30", "99999999999", "abc", ""]
    for flag in numeric:
        for v in values:
            in_range = v == "99999999999" and flag in ("--dataset-tokens", "--dataset-examples")
            out.append(Case("flags", f"{flag} {v!r}", ["plan", "--model", MODEL, "--method", "lora", flag, v,
                                                         "--format", "json"], refuse=not in_range, json_out=True))
    for flag in ["--budget", "--deadline-hours", "--max-hourly", "--runs-per-month", "--other-use-hours", "--top"]:
        for v in ["nan", "inf", "-1", "-inf", "1e309", "1e300"]:  # all out of range (upper bounds too)
            argv = ["plan", "--model", MODEL, "--gpu", "A100-80GB", flag, v]
            if flag == "--other-use-hours":
                argv += ["--runs-per-month", "4"]
            out.append(Case("flags", f"{flag} {v}", argv, refuse=True))
    for model in ["a" * 300, "a/" + "b" * 300, "x" * 5000, "../" * 2000 + "config.json", "meta-llama/\tLlama",
                  "https://huggingface.co/meta-llama/Llama-3.1-8B"]:
        out.append(Case("flags", f"--model {model[:20]}...({len(model)})", ["plan", "--model", model], refuse=True))
    out.append(Case("flags", "--name 100k", ["plan", "--model", MODEL, "--name", "n" * 100_000, "--gpu", "A100-80GB"],
                    refuse=True))
    return out


def conflict_cases() -> list[Case]:
    base = ["plan", "--model", MODEL, "--gpu", "A100-80GB"]
    combos = [
        ["--method", "full", "--lora-r", "8"],
        ["--method", "full", "--lora-alpha", "8"],
        ["--method", "full", "--lora-targets", "q_proj"],
        ["--method", "lora", "--double-quant"],
        ["--method", "full", "--double-quant"],
        ["--parallel", "fsdp", "--gpus", "1"],
        ["--parallel", "zero3", "--gpus", "1"],
        ["--spot", "--no-spot"],
        ["--packing", "--no-packing"],
        ["--compile", "--no-compile"],
        ["--gradient-checkpointing", "--no-gradient-checkpointing"],
        ["--chunked-loss", "--no-chunked-loss"],
        ["--double-quant", "--no-double-quant"],
        ["--no-local", "--local-profile", "rtx4090-workstation"],
        ["--no-local", "--provider", "local"],
        ["--provider", "local", "--spot"],
        ["--other-use-hours", "100"],
        ["--attention", "flash", "--precision", "fp32", "--method", "full"],
        ["--dataset-tokens", "1000000", "--dataset-examples", "1000", "--mean-example-tokens", "500"],
        ["--method", "qlora", "--precision", "fp32"],
        ["--attention", "flash", "--gpu", "T4"],
        ["--parallel", "zero3", "--gpus", "2", "--stack", "torchtune"],
        ["--gpus", "1", "--parallel", "fsdp", "--nodes", "1"],
    ]
    return [Case("conflicts", " ".join(c), base + c, refuse=True) for c in combos]


def spec_cases(tmp: Path) -> list[Case]:
    d = tmp / "specs"
    good = f"model: {MODEL}\nmethod: qlora\n"
    docs: dict[str, str | bytes] = {
        "bomb": BOMB,
        "dup_keys": good + "seq_len: 1024\nseq_len: 4096\n",
        "deep": "model: " + "[" * 5000 + "]" * 5000 + "\n",
        "deep_map": "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v: 1\n",
        "binary": bytes(range(256)) * 8,
        "latin1": ("model: caf\xe9\n").encode("latin-1"),
        "list_top": "- a\n- b\n",
        "scalar_top": "42\n",
        "lora_targets_int": good + "lora_targets: 5\n",
        "lora_targets_nested": good + "lora_targets: [[a, b]]\n",
        "gpus_1e30": good + "gpus: 1e30\n",
        "seq_nan": good + "seq_len: .nan\n",
        "epochs_inf": good + "epochs: .inf\n",
        "epochs_nan": good + "epochs: .nan\n",
        "lr_huge": good + "learning_rate: 1e300\n",
        "lr_nan": good + "learning_rate: .nan\n",
        "seq_2_31": good + "seq_len: 2147483648\n",
        "lora_r_huge": good + "lora_r: 9223372036854775808\n",
        "grad_accum_1e30": good + "grad_accum: 1e30\n",
        "max_steps_1e30": good + "max_steps: 1e30\n",
        "model_list": "model: [a, b]\n",
        "model_long": "model: " + "m" * 300 + "\n",
        "data_int": good + "data: 5\n",
        "data_path_list": good + "data: {path: [a]}\n",
        "name_huge": good + "name: " + "n" * 200_000 + "\n",
        "key_int": good + "5: 6\n",
        "key_null": good + "~: 6\n",
        "timestamp": good + "name: 2024-01-01\n",
        "seed_neg": good + "seed: -5\n",
        "dropout_nan": good + "lora_dropout: .nan\n",
        "merge_key": "base: &b {method: lora}\n<<: *b\nmodel: " + MODEL + "\n",
        "tab_indent": "model: x\n\tmethod: lora\n",
        "empty": "",
        "nul": "model: a\x00b\n",
    }
    out = []
    for name, text in docs.items():
        p = _w(d / f"{name}.yaml", text)
        out.append(Case("spec", name, ["plan", str(p), "--format", "json", "--gpu", "A100-80GB"],
                        refuse=name not in ("empty",) and name not in ("timestamp",), json_out=True))
    out[-2].refuse = True  # empty: no model
    big = d / "big.yaml"
    with open(big, "w") as fh:
        fh.write(f"model: {MODEL}\n")
        chunk = "".join(f"k{i}: {i}\n" for i in range(100_000))
        while fh.tell() < 50_000_000:
            fh.write(chunk)
    out.append(Case("spec", "50MB", ["plan", str(big)], refuse=True))
    out.append(Case("spec", "fifo", ["plan", str(_fifo(d / "fifo.yaml"))], refuse=True))
    (d / "dir.yaml").mkdir()
    out.append(Case("spec", "directory", ["plan", str(d / "dir.yaml")], refuse=True))
    out.append(Case("spec", "missing", ["plan", str(d / "nope.yaml")], refuse=True))
    out.append(Case("spec", "/dev/zero", ["plan", "/dev/zero"], refuse=True))
    return out


def model_config_cases(tmp: Path) -> list[Case]:
    d = tmp / "models"
    base = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256}

    def cfg(**kw) -> str:
        return json.dumps({**base, **kw})

    docs: dict[str, str | bytes] = {
        "vocab_huge": cfg(vocab_size=10 ** 30),
        "vocab_nan": cfg().replace('"vocab_size": 128256', '"vocab_size": NaN'),
        "vocab_inf": cfg().replace('"vocab_size": 128256', '"vocab_size": 1e400'),
        "vocab_neg": cfg(vocab_size=-1),
        "vocab_str": cfg(vocab_size="abc"),
        "name_list": cfg(_name_or_path=["a", "b"]),
        "tie_no": cfg(tie_word_embeddings="no"),
        "type_list": cfg(model_type=["llama"]),
        "text_config_list": cfg(text_config=[1, 2]),
        "hidden_zero": cfg(hidden_size=0),
        "heads_zero": cfg(num_attention_heads=0),
        "kv_3": cfg(num_key_value_heads=3),
        "head_dim_zero": cfg(head_dim=0),
        "layers_huge": cfg(num_hidden_layers=10 ** 12),
        "deep": "[" * 100_000 + "]" * 100_000,
        "dup": cfg()[:-1] + ', "vocab_size": 5}',
        "binary": bytes(range(256)) * 4,
        "list": "[1, 2]",
        "max_pos_float": cfg(max_position_embeddings=1.5),
    }
    out = []
    for name, text in docs.items():
        p = _w(d / name / "config.json", text)
        out.append(Case("model_config", name, ["plan", "--model", str(p), "--gpu", "A100-80GB", "--format", "json",
                                               "--no-local"],
                        # read as meant: "no" is false; a list as _name_or_path or text_config is ignored
                        refuse=name not in ("tie_no", "name_list", "text_config_list"), json_out=True))
    out.append(Case("model_config", "fifo", ["plan", "--model", str(_fifo(d / "fifo" / "config.json")),
                                             "--gpu", "A100-80GB"], refuse=True))
    (d / "dirjson" / "config.json").mkdir(parents=True)
    out.append(Case("model_config", "config.json dir", ["plan", "--model", str(d / "dirjson"), "--gpu", "A100-80GB"],
                    refuse=True))
    return out


def profile_cases(tmp: Path) -> list[Case]:
    d = tmp / "profiles"
    docs: dict[str, str | bytes] = {
        "binary": bytes(range(256)) * 4,
        "list": "- a\n- b\n",
        "base_list": "base: [a]\n",
        "base_dict": "base: {a: 1}\n",
        "sources_list": "base: rtx4090-workstation\nsources: [a, b]\n",
        "sources_str": "base: rtx4090-workstation\nsources: abc\n",
        "gpu_count_inf": "base: rtx4090-workstation\ngpu_count: .inf\n",
        "gpu_count_float": "base: rtx4090-workstation\ngpu_count: 1.5\n",
        "price_nan": "base: rtx4090-workstation\npurchase_price_usd: .nan\n",
        "name_list": "base: rtx4090-workstation\nname: [a]\n",
        "gpu_list": "base: rtx4090-workstation\ngpu: [a]\n",
        "workload_list": "base: rtx4090-workstation\nworkload: [1]\n",
        "workload_inf": "base: rtx4090-workstation\nruns_per_month: .inf\njob_hours: 1\n",
        "bomb": BOMB.replace("model: meta-llama/Llama-3.1-8B\nlora_targets", "sources"),
        "dup": "base: rtx4090-workstation\npue: 1.2\npue: 1.5\n",
        "key_int": "base: rtx4090-workstation\n5: 1\n",
        "owned_str": "base: rtx4090-workstation\nalready_owned: maybe\n",
    }
    out = []
    for name, text in docs.items():
        p = _w(d / f"{name}.yaml", text)
        out.append(Case("local_profile", name, ["plan", "--model", MODEL, "--gpu", "RTX4090", "--local-profile",
                                                str(p)], refuse=True))
    out.append(Case("local_profile", "fifo", ["plan", "--model", MODEL, "--local-profile",
                                              str(_fifo(d / "fifo.yaml"))], refuse=True))
    (d / "dir.yaml").mkdir()
    out.append(Case("local_profile", "dir", ["plan", "--model", MODEL, "--local-profile", str(d / "dir.yaml")],
                    refuse=True))
    return out


def _offers_doc(rows: object = None, **top: object) -> dict:
    cols = ["provider", "instance_type", "region", "zone", "gpu", "gpu_count", "gpu_memory_gib", "vcpus", "ram_gib",
            "usd_per_hour", "spot_usd_per_hour", "source", "as_of", "notes"]
    if rows is None:
        rows = [["aws", "p4d.24xlarge", "us-east-1", None, "A100", 8, 40, 96, 1152, 32.77, 10.0, "live aws", "2099-01-01", []]]
    doc = {"format": "gpuplan-offers/1", "built_at": "2099-01-01T00:00:00Z",
           "providers": {"aws": {"source": "live aws", "as_of": "2099-01-01"}}, "columns": cols, "offers": rows,
           "dropped": [], "warnings": []}
    doc.update(top)
    return doc


def _bad_offer_docs() -> dict[str, str | bytes]:
    row = ["aws", "p4d.24xlarge", "us-east-1", None, "A100", 8, 40, 96, 1152, 32.77, 10.0, "live aws", "2099-01-01", []]

    def with_col(i: int, v: object) -> str:
        r = list(row)
        r[i] = v
        return json.dumps(_offers_doc([r]))

    return {
        "providers_list": json.dumps(_offers_doc(providers=["aws"])),
        "providers_null": json.dumps(_offers_doc(providers=None)),
        "offers_null": json.dumps(_offers_doc(offers=None)),
        "columns_null": json.dumps(_offers_doc(columns=None)),
        "row_null": json.dumps(_offers_doc([None])),
        "row_short": json.dumps(_offers_doc([["aws"]])),
        "gpu_count_0": with_col(5, 0),
        "gpu_count_str": with_col(5, "abc"),
        "gpu_count_inf": with_col(5, 1e400).replace("Infinity", "1e400"),
        "price_str": with_col(9, "cheap"),
        "price_nan": with_col(9, float("nan")),
        "price_inf": with_col(9, 1e400).replace("Infinity", "1e400"),
        "price_neg": with_col(9, -5),
        "gpu_unknown": with_col(4, "TPU-v9"),
        "gpu_null": with_col(4, None),
        "notes_str": with_col(13, "x"),
        "as_of_int": with_col(12, 5),
        "instance_200k": with_col(1, "i" * 200_000),
        "deep": "[" * 100_000 + "]" * 100_000,
        "truncated": json.dumps(_offers_doc())[:150],
        "binary": bytes(range(256)) * 4,
        "warnings_dict": json.dumps(_offers_doc(warnings={"a": 1})),
        "dropped_ints": json.dumps(_offers_doc(dropped=[1, 2])),
    }


def cache_cases(tmp: Path) -> list[Case]:
    out = []
    commands = [("prices", ["prices", "--format", "json"]), ("prices-aws", ["prices", "--provider", "aws"]),
                ("plan", ["plan", "--model", MODEL, "--gpu", "A100", "--format", "json", "--no-local"])]
    for name, text in _bad_offer_docs().items():
        cdir = tmp / "cache" / name
        _w(cdir / "aws.json", text)
        for cname, argv in commands:
            out.append(Case("price_cache", f"{name} / {cname}", argv, env={"GPUPLAN_CACHE_DIR": str(cdir)},
                            json_out=True, warn=True))
    for special in ("fifo", "dir"):
        cdir = tmp / "cache" / special
        if special == "fifo":
            _fifo(cdir / "aws.json")
        else:
            (cdir / "aws.json").mkdir(parents=True)
        for cname, argv in commands:
            out.append(Case("price_cache", f"{special} / {cname}", argv, env={"GPUPLAN_CACHE_DIR": str(cdir)},
                            json_out=True, warn=True))
    return out


def snapshot_cases(tmp: Path) -> list[Case]:
    out = []
    for name, text in _bad_offer_docs().items():
        p = _w(tmp / "snap" / f"{name}.json", text)
        for cname, argv in (("prices", ["prices", "--format", "json"]),
                            ("plan", ["plan", "--model", MODEL, "--gpu", "A100", "--format", "json", "--no-local"])):
            out.append(Case("snapshot", f"{name} / {cname}", argv, env={"GPUPLAN_SNAPSHOT": str(p)}, json_out=True,
                            warn=True))
    return out


AWS_HEADER = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
              "AvailabilityZone,Arch\n")


def catalog_cases(tmp: Path) -> list[Case]:
    good = "p4d.24xlarge,A100,8,96,1152,,32.77,10.0,us-east-1,us-east-1a,x86_64\n"
    docs: dict[str, str | bytes | None] = {
        "field_200k": AWS_HEADER + good.replace("p4d.24xlarge", "p" * 200_000),
        "count_inf": AWS_HEADER + good.replace(",8,", ",inf,"),
        "count_huge": AWS_HEADER + good.replace(",8,", ",1e30,"),
        "price_inf": AWS_HEADER + good.replace("32.77", "inf"),
        "price_nan": AWS_HEADER + good.replace("32.77", "nan").replace("10.0", "nan"),
        "spot_inf": AWS_HEADER + good.replace("10.0", "inf"),
        "price_neg": AWS_HEADER + good.replace("32.77", "-3"),
        "latin1": (AWS_HEADER + good.replace("us-east-1a", "us-east-1\xe9")).encode("latin-1"),
        "binary": bytes(range(256)) * 16,
        "empty": "",
        "header_only": AWS_HEADER,
        "short_rows": AWS_HEADER + "a,b\n",
        "nul": AWS_HEADER + good.replace("p4d", "p\x004d"),
        "dir": None,
        "fifo": None,
    }
    out = []
    for name, text in docs.items():
        home = tmp / "sky" / name
        csv_path = home / ".sky" / "catalogs" / "v8" / "aws" / "vms.csv"
        if name == "dir":
            csv_path.mkdir(parents=True)
        elif name == "fifo":
            _fifo(csv_path)
        else:
            _w(csv_path, text)
        env = {"HOME": str(home)}
        out.append(Case("catalog", f"{name} / prices", ["prices", "--format", "json"], env=env, json_out=True))
        out.append(Case("catalog", f"{name} / prices-aws", ["prices", "--provider", "aws", "--format", "json"], env=env,
                        json_out=True))
        out.append(Case("catalog", f"{name} / build-snapshot", ["prices", "build-snapshot", "--from",
                                                                 str(home / ".sky" / "catalogs"), "-o",
                                                                 str(tmp / "out" / f"{name}.json")],
                        refuse=name not in ("price_inf", "spot_inf", "count_inf", "count_huge", "price_nan",
                                            "price_neg", "field_200k", "nul")))
    return out


def output_cases(tmp: Path, catalogs: Path | None) -> list[Case]:
    if catalogs is None:
        return []
    d = tmp / "outputs"
    d.mkdir(parents=True)
    _w(d / "file", "x")
    fifo = _fifo(d / "fifo.json")
    (d / "dir.json").mkdir()
    targets = {"empty": "", "dir": str(d / "dir.json"), "under_file": str(d / "file" / "o.json"),
               "fifo": str(fifo), "dot": "."}
    # A character device: never the system's /dev/null (a checkout without the fix, run as root, would replace
    # it with a regular file for every process on the machine), but a private copy of it in the temp folder.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        import stat

        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        targets["char device"] = str(d / "null")
    out = [Case("output", f"build-snapshot -o {k}", ["prices", "build-snapshot", "--from", str(catalogs), "-o", v],
                refuse=True) for k, v in targets.items()]
    return out


def run_case(case: Case, root: Path, home: Path, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUPLAN_", "SKY_RUNTIME"))}
    env.update({"PYTHONPATH": str(root), "HOME": str(home), "GPUPLAN_CACHE_DIR": str(home / "empty-cache"),
                "HF_HUB_OFFLINE": "1", "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1", "COLUMNS": "100"})
    env.update(case.env)
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "planner.cli", *case.argv], cwd=home, env=env,
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"case": case, "outcome": "hang", "seconds": timeout}
    secs = time.perf_counter() - t
    err = p.stderr.decode("utf-8", "replace")
    outcome = "ok"
    if "Traceback (most recent call last)" in err or "internal error" in err or p.returncode not in (0, 2, 130):
        outcome = "traceback"
    elif case.refuse and p.returncode == 0:
        outcome = "accepted"
    elif p.returncode == 0 and case.json_out and "--format" in case.argv and "json" in case.argv:
        try:
            json.loads(p.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            outcome = "bad_json"
    if outcome == "ok" and case.warn and p.returncode == 0 and "warning" not in err:
        outcome = "silent"
    return {"case": case, "outcome": outcome, "seconds": secs, "rc": p.returncode, "stderr": err[-400:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=REPO, help="checkout to run (default: this one)")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="run one category")
    ap.add_argument("--catalogs", type=Path, default=None,
                    help="a folder of SkyPilot catalogs for the output-path cases (default: shared data)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    catalogs = args.catalogs
    if catalogs is None:
        guess = Path(os.environ.get("GPUPLAN_SHARED", REPO.parent / "shared")) / "data" / "catalogs"
        catalogs = guess if guess.is_dir() else None
    tmp = Path(tempfile.mkdtemp(prefix="gpuplan-fuzz-"))
    try:
        home = tmp / "home"
        home.mkdir()
        cases = (flag_cases() + conflict_cases() + spec_cases(tmp) + model_config_cases(tmp) + profile_cases(tmp)
                 + cache_cases(tmp) + snapshot_cases(tmp) + catalog_cases(tmp) + output_cases(tmp, catalogs))
        if args.only:
            cases = [c for c in cases if c.category == args.only]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, args.root.resolve(), home, args.timeout), cases))
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = ("traceback", "hang", "accepted", "bad_json", "silent")
    table: dict[str, dict[str, int]] = {}
    for r in results:
        row = table.setdefault(r["case"].category, {"cases": 0, **{k: 0 for k in kinds}})
        row["cases"] += 1
        if r["outcome"] in kinds:
            row[r["outcome"]] += 1
    print(f"root: {args.root}   cases: {len(results)}   wall: {wall:.0f} s")
    print(f"{'category':<14}{'cases':>6}" + "".join(f"{k:>11}" for k in kinds))
    total = {"cases": 0, **{k: 0 for k in kinds}}
    for cat, row in table.items():
        print(f"{cat:<14}{row['cases']:>6}" + "".join(f"{row[k]:>11}" for k in kinds))
        for k in total:
            total[k] += row[k]
    print(f"{'total':<14}{total['cases']:>6}" + "".join(f"{total[k]:>11}" for k in kinds))
    if args.verbose:
        for r in results:
            if r["outcome"] != "ok":
                last = (r.get("stderr") or "").strip().splitlines()[-1:] or [""]
                print(f"  [{r['outcome']}] {r['case'].category}: {r['case'].label[:70]} -> rc={r.get('rc')} {last[0][:160]}")
    return 0 if total["traceback"] == 0 and total["hang"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
