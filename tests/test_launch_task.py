"""The SkyPilot tasks `gpuplan launch` builds from real plans (planner.plan.plan_job), inspected in-process.

Building sky.Task/Resources/Storage objects is offline and starts no API server; `import sky` happens once.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest
import yaml

from launch.prepare import local_price, prepare_launch
from launch.task import OUTPUT_MOUNT, build_task, task_yaml
from planner.plan import plan_job
from train.spec import SpecError, load_spec, spec_from_dict

SECRET = "hf_secret123"
QLORA_8B = {"model": "meta-llama/Llama-3.1-8B", "name": "demo", "dataset_tokens": 20_000_000}
FULL_70B = {"model": "meta-llama/Llama-3.1-70B", "method": "full", "parallel": "fsdp", "precision": "bf16-mixed",
            "optimizer": "adamw", "dataset_tokens": 20_000_000}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A clean HOME (no SkyPilot catalogs, kubeconfig or pools of the machine) with HF_TOKEN set."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GPUPLAN_HOME", str(tmp_path / "gpuplan"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for var in ("KUBECONFIG", "SKY_RUNTIME_DIR", "SKYPILOT_GLOBAL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def only(resources):
    (r,) = list(resources)
    return r


def test_on_demand_cloud_task_runs_the_plans_pick_with_autodown(home):
    spec = spec_from_dict(QLORA_8B)
    plan = plan_job(spec, include_local=False)
    p = prepare_launch(spec, plan, "cloud", spot=False)
    opt = p.option
    assert p.mode == "cluster" and p.idle_minutes == 10 and not opt["spot"] and opt["fits"]
    cheapest = min((o for o in plan["options"] if o["fits"] and not o["spot"]), key=lambda o: o["cost_usd"])
    assert opt["cost_usd"] == pytest.approx(cheapest["cost_usd"])
    task = build_task(p.task_plan)
    r = only(task.resources)
    assert str(r.cloud).lower() == opt["provider"] and r.region == opt["region"]
    assert r.accelerators == {opt["gpu"]: opt["gpus"]} and not r.use_spot
    assert r.disk_size >= 256 and task.num_nodes == 1
    assert task.run == "python -m train --config job.yaml" and "transformers" in task.setup
    # the workdir carries the trainer and the spec the trainer will read
    workdir = Path(task.workdir)
    assert (workdir / "train" / "__main__.py").is_file()
    shipped = load_spec(workdir / "job.yaml")
    assert (shipped.model, shipped.gpu, shipped.gpus) == (spec.model, opt["gpu"], opt["gpus"])


def test_spot_is_a_managed_job_with_recovery_and_a_bucket_mounted_for_checkpoints(home):
    spec = spec_from_dict(QLORA_8B)
    plan = plan_job(spec, include_local=False)
    p = prepare_launch(spec, plan, "cloud", provider="aws", spot=True)
    assert p.mode == "managed-job" and p.option["spot"] and p.option["provider"] == "aws"
    task = build_task(p.task_plan)
    r = only(task.resources)
    assert r.use_spot and r.job_recovery["strategy"] == "FAILOVER"
    assert 143 in r.job_recovery["recover_on_exit_codes"]  # the trainer's exit after a SIGTERM notice
    storage = task.storage_mounts[OUTPUT_MOUNT]
    assert storage.mode.value == "MOUNT_CACHED" and storage.name.startswith(p.name)
    assert [s.value for s in storage.stores] == ["S3"]
    # the trainer writes (and on recovery resumes from) checkpoints on that mount
    assert load_spec(Path(task.workdir) / "job.yaml").output_dir == f"{OUTPUT_MOUNT}/{p.name}"
    doc = yaml.safe_load(task_yaml(task, p.secrets))
    assert doc["file_mounts"][OUTPUT_MOUNT]["mode"] == "MOUNT_CACHED"
    assert doc["resources"]["use_spot"] is True


def test_several_nodes_start_through_torchrun_with_skypilots_node_environment(home):
    spec = spec_from_dict({**FULL_70B, "gpu": "H100"})
    plan = plan_job(spec, include_local=False)
    assert plan["fits"] is False  # one H100 is far too small, so the plan goes multi-node
    p = prepare_launch(spec, plan, "cloud", provider="aws", gpu="H100", spot=False)
    opt = p.option
    assert opt["nodes"] >= 2 and opt["gpu"] == "H100" and opt["fits"]
    task = build_task(p.task_plan)
    assert task.num_nodes == opt["nodes"]
    assert only(task.resources).accelerators == {"H100": opt["gpus"] // opt["nodes"]}
    assert "torch.distributed.run" in task.run
    for var in ("SKYPILOT_NODE_IPS", "SKYPILOT_NODE_RANK", "SKYPILOT_NUM_GPUS_PER_NODE"):
        assert var in task.run
    shipped = load_spec(Path(task.workdir) / "job.yaml")
    assert (shipped.nodes, shipped.gpus) == (opt["nodes"], opt["gpus"] // opt["nodes"])
    # the full fine-tune keeps checkpoints of a 70B model: the disk grows past SkyPilot's default
    assert only(task.resources).disk_size > 256


def test_secrets_reach_skypilots_secrets_only(home):
    spec = spec_from_dict(QLORA_8B)
    p = prepare_launch(spec, plan_job(spec, include_local=False), "cloud")
    task = build_task(p.task_plan)
    assert task.secrets["HF_TOKEN"].get_secret_value() == SECRET  # handed to SkyPilot at launch...
    text = task_yaml(task, p.secrets)
    assert SECRET not in text and yaml.safe_load(text)["secrets"] == {"HF_TOKEN": "<redacted>"}
    for f in Path(task.workdir).rglob("*"):  # ...and never written into the shipped files
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def write_kube(home: Path) -> None:
    (home / ".kube").mkdir()
    ctx = {"cluster": "kind-skypilot", "user": "u"}
    (home / ".kube" / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-skypilot",
        "clusters": [{"name": "kind-skypilot", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "kind-skypilot", "context": ctx}, {"name": "ssh-gpu-box", "context": ctx}]}))


@pytest.mark.parametrize("pools, infra, cloud, region", [
    (None, "k8s/kind-skypilot", "Kubernetes", "kind-skypilot"),
    ({"gpu-box": {"hosts": ["10.0.0.5"], "user": "me"}}, "ssh/gpu-box", "SSH", "ssh-gpu-box"),
])
def test_local_skypilot_infra_task_and_its_pricing(home, pools, infra, cloud, region):
    write_kube(home)
    if pools:
        (home / ".sky").mkdir()
        (home / ".sky" / "ssh_node_pools.yaml").write_text(yaml.safe_dump(pools))
    spec = spec_from_dict(QLORA_8B)
    plan = plan_job(spec, provider="local", local_profiles=["rtx4090-workstation"])
    p = prepare_launch(spec, plan, "local", local_profile=True)
    assert p.mode == "cluster" and p.local.infra == infra
    task = build_task(p.task_plan)
    r = only(task.resources)
    assert (str(r.cloud), r.region, r.accelerators) == (cloud, region, {"RTX4090": 1})
    assert yaml.safe_load(task_yaml(task))["resources"]["infra"].split("/")[-1] == region.removeprefix("ssh-")
    ctx, gpu, rate = local_price(p, plan)
    profile = next(x for x in plan["local_profiles"] if x["name"] == "rtx4090-workstation")
    assert (ctx, gpu, rate) == (region, "RTX4090", pytest.approx(profile["usd_per_gpu_hour"])) and rate > 0


def runpod_with_spot(home: Path, catalogs_dir: Path) -> None:
    """A SkyPilot RunPod catalog in which spot sells below on-demand (RunPod's community cloud does;
    the shared extract's spot column equals on-demand, so validation drops it)."""
    dst = home / ".sky" / "catalogs" / "v8" / "runpod"
    dst.mkdir(parents=True)
    with open(catalogs_dir / "skypilot-v8" / "runpod" / "vms.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["SpotPrice"] = f"{float(row['Price']) * 0.6:.2f}"
    with open(dst / "vms.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    later = time.time() + 2 * 86400  # refreshed after the bundled snapshot was built, so it takes precedence
    os.utime(dst / "vms.csv", (later, later))


def test_spot_on_a_cloud_without_object_store_needs_a_bucket(home, catalogs_dir):
    runpod_with_spot(home, catalogs_dir)
    spec = spec_from_dict(QLORA_8B)
    plan = plan_job(spec, include_local=False)
    with pytest.raises(SpecError) as err:
        prepare_launch(spec, plan, "cloud", provider="runpod", spot=True)
    assert err.value.field == "--bucket" and "s3://" in err.value.fix
    p = prepare_launch(spec, plan, "cloud", provider="runpod", spot=True, bucket="s3://my-ckpts")
    storage = build_task(p.task_plan).storage_mounts[OUTPUT_MOUNT]
    assert storage.source == "s3://my-ckpts" and storage.mode.value == "MOUNT_CACHED"
    assert only(build_task(p.task_plan).resources).accelerators.keys() <= {"H100-SXM", "H200-SXM", "A100-80GB", "L4"}


@pytest.mark.parametrize("kwargs, field", [
    ({"provider": "aws", "bucket": "Not_A_Bucket"}, "--bucket"),
    ({"provider": "lambda", "spot": True}, "--spot"),
    ({"provider": "ibm"}, "--provider"),
    ({"gpu": "L4", "gpus": 1}, "--gpu"),
])
def test_bad_choices_name_the_flag(home, kwargs, field):
    # a full 70B fine-tune does not fit on one L4 (24 GB)
    spec = spec_from_dict({**FULL_70B, "gpu": "L4"} if field == "--gpu" else QLORA_8B)
    plan = plan_job(spec, include_local=False)
    with pytest.raises(SpecError) as err:
        prepare_launch(spec, plan, "cloud", **kwargs)
    assert err.value.field == field and err.value.fix


def test_a_spot_job_on_several_gpus_gets_its_providers_preemption_notice_as_shutdown_grace():
    """AWS gives 2 minutes between the spot notice and the end (GCP/Azure 30 s): torchrun waits that long
    before killing the ranks, so the save the trainer starts on SIGTERM can finish."""
    from launch.commands import run_command
    from train.preemption import NOTICE_S

    cmd = run_command(1, 8, grace_s=NOTICE_S["aws"])
    assert "GPUPLAN_STOP_GRACE_S=120" in cmd and "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=125" in cmd
