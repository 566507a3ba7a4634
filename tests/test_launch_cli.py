"""`gpuplan launch` end to end: dry runs, bad input, a real local training run, SkyPilot's optimizer agreeing.

Nothing here talks to a cloud or starts SkyPilot's API server; each test checks it left no process behind.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import yaml

SECRET = "hf_secret123"
JOB = {"model": "meta-llama/Llama-3.1-8B", "name": "demo", "dataset_tokens": 20_000_000}


def sky_servers() -> set[int]:
    """pids of SkyPilot API servers on this machine (reported, never touched)."""
    found = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        if "sky.server.server" in " ".join(p.info.get("cmdline") or []):
            found.add(p.info["pid"])
    return found


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Environment for a `gpuplan` subprocess: clean HOME, the secret set, no API server allowed."""
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SKY_RUNTIME_DIR", "SKYPILOT_GLOBAL_CONFIG")}
    e.update(HOME=str(tmp_path / "home"), GPUPLAN_HOME=str(tmp_path / "gpuplan"), HF_TOKEN=SECRET,
             SKYPILOT_DISABLE_LOCAL_API_SERVER="1", HF_HUB_OFFLINE="1")
    (tmp_path / "home").mkdir()
    return e


@pytest.fixture(autouse=True)
def no_process_left_behind():
    me = psutil.Process()
    before_children = {c.pid for c in me.children(recursive=True)}
    before_servers = sky_servers()
    yield
    left = {c.pid for c in me.children(recursive=True)} - before_children
    assert not left, f"processes left behind: {left}"
    assert not (sky_servers() - before_servers), "a SkyPilot API server was started"


def gpuplan(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def job(tmp_path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(JOB))
    return path


def test_cloud_dry_run_prints_the_task_and_cost_and_starts_nothing(job, env, tmp_path):
    r = gpuplan(["launch", str(job), "--target", "cloud", "--provider", "gcp", "--on-demand", "--gpus", "1", "--dry-run"],
                env, tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "dry run: nothing started" in out and "[cluster]" in out
    cost = next(line for line in out.splitlines() if line.startswith("cost:"))
    assert "gcp" in cost and "on-demand" in cost and "estimated" in cost and "$" in cost
    task = yaml.safe_load(out.split("takes this YAML) ---\n", 1)[1].rsplit("dry run:", 1)[0])
    assert task["resources"]["infra"].startswith("gcp/") and "use_spot" not in task["resources"]
    assert task["run"] == "python -m train --config job.yaml"
    assert task["secrets"] == {"HF_TOKEN": "<redacted>"}
    assert SECRET not in out + r.stderr


@pytest.mark.parametrize("args, flag", [
    (["--provider", "ibm"], "--provider"),
    (["--gpu", "L4", "--gpus", "1", "--set", "method=full", "--set", "optimizer=adamw",
      "--set", "precision=bf16-mixed"], "--gpu"),
    (["--spot", "--provider", "lambda"], "--spot"),
    (["--target", "local", "--infra", "ssh/nowhere"], "--infra"),
    (["--set", "seq_len=lots"], "seq_len"),
])
def test_bad_input_is_one_line_naming_the_field_and_exit_2(job, env, tmp_path, args, flag):
    r = gpuplan(["launch", str(job), "--dry-run", *args], env, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_job_file_is_exit_2(env, tmp_path):
    r = gpuplan(["launch", str(tmp_path / "nope.yaml"), "--dry-run"], env, tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == f"error: job file: {tmp_path / 'nope.yaml'} does not exist; check the path"


def test_local_direct_run_trains_the_smoke_model_and_leaves_an_adapter(repo, env, tmp_path):
    out = tmp_path / "out"
    r = gpuplan(["launch", str(repo / "examples" / "smoke.yaml"), "--target", "local", "--infra", "direct",
                 "--yes", "--max-steps", "3", "--output-dir", str(out)], env, tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "[direct]" in r.stdout and "-m train --config" in r.stdout
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert SECRET not in r.stdout + r.stderr


def test_local_direct_run_passes_on_the_trainers_exit_code(repo, env, tmp_path):
    bad = tmp_path / "bad.yaml"
    spec = yaml.safe_load((repo / "examples" / "smoke.yaml").read_text())
    spec["data"]["path"] = str(tmp_path / "missing.jsonl")  # the trainer refuses it: exit 2
    bad.write_text(yaml.safe_dump(spec))
    r = gpuplan(["launch", str(bad), "--target", "local", "--infra", "direct", "--yes", "--max-steps", "1",
                 "--output-dir", str(tmp_path / "o")], env, tmp_path, timeout=300)
    assert r.returncode == 2 and "data.path" in r.stderr


OPTIMIZE = textwrap.dedent("""
    import json, sys
    import sky
    from sky import check, clouds, exceptions, optimizer
    from sky.clouds import aws
    from launch.task import build_task
    from launch.prepare import prepare_launch
    from planner.plan import plan_job
    from train.spec import spec_from_dict

    # As SkyPilot's own tests do (tests/common.py enable_all_clouds_in_monkeypatch): mock which clouds are
    # enabled, nothing else. AWS account identity is unavailable offline; SkyPilot then uses catalog zones.
    enabled = [clouds.AWS(), clouds.GCP(), clouds.Lambda()]
    check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: enabled
    check.check = lambda *a, **k: None
    def no_identity(*a, **k):
        raise exceptions.CloudUserIdentityError("offline test")
    aws.AWS.get_active_user_identity = classmethod(no_identity)

    out = []
    for spec_dict, kw in json.loads(sys.argv[1]):
        spec = spec_from_dict(spec_dict)
        prepared = prepare_launch(spec, plan_job(spec, include_local=False), "cloud", **kw)
        task = build_task(prepared.task_plan)
        with sky.Dag() as dag:
            dag.add(task)
        optimizer.Optimizer.optimize(dag, quiet=True)
        best = task.best_resources
        out.append({"plan": prepared.option, "sky": {"cloud": str(best.cloud).lower(), "region": best.region,
                    "instance_type": best.instance_type, "usd_per_hour": best.get_cost(3600) * task.num_nodes}})
    print("RESULT " + json.dumps(out))
""")


def test_skypilots_optimizer_picks_the_instance_the_plan_recommends(catalogs_dir, env, tmp_path):
    """SkyPilot, reading catalogs built from the shared extracts, lands on the plan's instance and price."""
    sky_home = tmp_path / "home"
    v8 = sky_home / ".sky" / "catalogs" / "v8"
    names = {"aws": "AWS", "gcp": "GCP", "lambda": "Lambda"}
    accels: dict[str, set[str]] = {}
    for cloud in names:
        (v8 / cloud).mkdir(parents=True)
        shutil.copy(catalogs_dir / "skypilot-v8" / cloud / "vms.csv", v8 / cloud / "vms.csv")
        with open(v8 / cloud / "vms.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row.get("AcceleratorName"):
                    accels.setdefault(row["AcceleratorName"], set()).add(names[cloud])
    (v8 / "common").mkdir()
    with open(v8 / "common" / "accelerators.csv", "w", newline="") as f:  # SkyPilot's accelerator-name index
        w = csv.writer(f)
        w.writerow(["AcceleratorName", "Clouds"])
        for name in sorted(accels):
            w.writerow([name, str(sorted(accels[name]))])
    cases = [(JOB, {"provider": "aws", "spot": False}), (JOB, {"provider": "gcp", "spot": False}),
             (JOB, {"provider": "lambda"}), (JOB, {"provider": "aws", "spot": True, "gpu": "A100-80GB"})]
    r = subprocess.run([sys.executable, "-c", OPTIMIZE, json.dumps(cases)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert len(results) == len(cases)
    for res in results:
        plan, sky_pick = res["plan"], res["sky"]
        assert (sky_pick["cloud"], sky_pick["region"]) == (plan["provider"], plan["region"])
        assert sky_pick["instance_type"] == plan["instance_type"], res
        assert sky_pick["usd_per_hour"] == pytest.approx(plan["usd_per_hour"], rel=0.02), res
