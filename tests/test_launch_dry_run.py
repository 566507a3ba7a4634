"""`gpuplan launch --dry-run` needs no extra and stages nothing; a real launch names the extra it is missing.

The task YAML a dry run prints is written by gpuplan (launch.task.task_config); SkyPilot reading it back must
give the same task, so the printed YAML is what a launch runs. "Not installed" is simulated per subprocess by an
import hook that refuses the module (find_spec and import both fail), as on a core-only install.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from launch.extras import MissingExtraError, require, train_modules
from launch.prepare import prepare_launch
from launch.task import task_config
from planner.plan import plan_job
from train.spec import SpecError, spec_from_dict

SECRET = "hf_secret456"
QLORA_8B = {"model": "meta-llama/Llama-3.1-8B", "name": "demo", "dataset_tokens": 20_000_000}
FULL_70B = {"model": "meta-llama/Llama-3.1-70B", "method": "full", "parallel": "fsdp", "precision": "bf16-mixed",
            "optimizer": "adamw", "dataset_tokens": 20_000_000, "gpu": "H100"}

# Runs the CLI with the named top-level modules made uninstallable.
WITHOUT = textwrap.dedent("""
    import sys
    blocked = set(sys.argv[1].split(","))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    sys.argv = ["gpuplan", *sys.argv[2:]]
    from planner.cli import main
    main()
""")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SKYPILOT_GLOBAL_CONFIG", "GPUPLAN_HOME")}
    e.update(HOME=str(tmp_path / "home"), HF_TOKEN=SECRET, SKYPILOT_DISABLE_LOCAL_API_SERVER="1",
             HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                            os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "home").mkdir()
    return e


def gpuplan_without(modules: list[str], args: list[str], env: dict[str, str], cwd: Path,
                    timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(modules) or "-", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def task_from(stdout: str) -> dict:
    return yaml.safe_load(stdout.split("takes this YAML) ---\n", 1)[1].rsplit("dry run:", 1)[0])


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    return lines[0]


@pytest.fixture
def job(tmp_path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(QLORA_8B))
    return path


def test_cloud_dry_run_works_without_skypilot_or_torch_and_stages_nothing(job, env, tmp_path):
    r = gpuplan_without(["sky", "torch", "transformers", "peft"],
                        ["launch", str(job), "--provider", "aws", "--spot", "--dry-run"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    task = task_from(r.stdout)
    assert task["resources"]["use_spot"] is True and task["resources"]["infra"].startswith("aws/")
    assert task["file_mounts"]["/gpuplan-outputs"]["mode"] == "MOUNT_CACHED"
    assert task["secrets"] == {"HF_TOKEN": "<redacted>"} and SECRET not in r.stdout + r.stderr
    assert "_requires_fuse" not in r.stdout  # private SkyPilot field: SkyPilot derives it from the mount
    staged = Path(task["workdir"])
    assert staged == tmp_path / "home" / ".gpuplan" / "launches" / task["name"]
    assert not (tmp_path / "home" / ".gpuplan").exists(), "a dry run staged a launch folder"
    assert f"nothing staged (a launch stages the job in {staged})" in r.stdout


def test_local_dry_run_works_without_torch_and_stages_nothing(repo, env, tmp_path):
    r = gpuplan_without(["torch", "sky"], ["launch", str(repo / "examples" / "smoke.yaml"), "--target", "local",
                                           "--infra", "direct", "--dry-run"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "-m train --config" in r.stdout and "dry run: nothing started" in r.stdout
    assert not (tmp_path / "home" / ".gpuplan").exists()


def test_cloud_launch_without_skypilot_names_the_launch_extra_before_planning(job, env, tmp_path):
    r = gpuplan_without(["sky"], ["launch", str(job), "--yes"], env, tmp_path)
    assert r.returncode == 2
    line = one_error_line(r)
    assert line.endswith("install it with: pip install 'gpuplan[launch]'") and "sky" in line
    assert r.stdout == "" and not (tmp_path / "home" / ".gpuplan").exists()


def test_local_launch_without_torch_names_the_train_extra_and_starts_nothing(repo, env, tmp_path):
    r = gpuplan_without(["torch"], ["launch", str(repo / "examples" / "smoke.yaml"), "--target", "local",
                                    "--infra", "direct", "--yes", "--output-dir", str(tmp_path / "out")],
                        env, tmp_path)
    assert r.returncode == 2
    line = one_error_line(r)
    assert "torch" in line and line.endswith("install it with: pip install 'gpuplan[train]'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "home" / ".gpuplan").exists()


def test_local_skypilot_launch_without_skypilot_names_the_launch_extra(job, env, tmp_path):
    kube = tmp_path / "home" / ".kube"
    kube.mkdir()
    ctx = {"cluster": "kind-skypilot", "user": "u"}
    (kube / "config").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kind-skypilot",
        "clusters": [{"name": "kind-skypilot", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}], "contexts": [{"name": "kind-skypilot", "context": ctx}]}))
    r = gpuplan_without(["sky"], ["launch", str(job), "--target", "local", "--gpu", "L40S", "--yes"], env, tmp_path)
    assert r.returncode == 2
    assert one_error_line(r).endswith("pip install 'gpuplan[launch]'")
    assert not (tmp_path / "home" / ".gpuplan").exists()


def test_missing_extra_is_an_input_error_naming_module_and_extra():
    with pytest.raises(MissingExtraError) as err:
        require("launch --target local", "train", ["os", "no_such_module_xyz"])
    assert isinstance(err.value, SpecError) and (err.value.module, err.value.extra) == ("no_such_module_xyz", "train")
    assert err.value.one_line() == ("launch --target local: needs no_such_module_xyz, which is not installed; "
                                    "install it with: pip install 'gpuplan[train]'")
    require("x", "train", ["os", "json"])  # all present: no error


def test_the_trainer_needs_bitsandbytes_only_for_qlora_or_8bit_optimizers():
    assert "bitsandbytes" in train_modules("qlora", "adamw")
    assert "bitsandbytes" in train_modules("lora", "paged-adamw-8bit")
    assert "bitsandbytes" not in train_modules("full", "adamw")
    assert {"torch", "transformers", "peft"} <= set(train_modules("full", "adamw"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GPUPLAN_HOME", str(tmp_path / "gpuplan"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for var in ("KUBECONFIG", "SKY_RUNTIME_DIR", "SKYPILOT_GLOBAL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _without_private(config: dict) -> dict:
    config = {k: v for k, v in config.items() if not k.startswith("_")}  # e.g. _user_specified_yaml
    config["resources"] = {k: v for k, v in config.get("resources", {}).items() if not k.startswith("_")}
    config.pop("volumes", None)
    if not config.get("file_mounts"):
        config.pop("file_mounts", None)
    return config


@pytest.mark.parametrize("spec, kw", [
    (QLORA_8B, {"provider": "gcp", "spot": False, "gpus": 1}),  # on-demand with a GCS bucket
    (QLORA_8B, {"provider": "aws", "spot": True}),  # managed job: recovery, MOUNT_CACHED bucket
    (QLORA_8B, {"provider": "lambda", "spot": False}),  # no object store: no file_mounts
    (QLORA_8B, {"provider": "aws", "spot": False, "bucket": "s3://my-existing-bucket"}),
    (FULL_70B, {"provider": "aws", "gpu": "H100", "spot": False}),  # several nodes, a larger disk
])
def test_skypilot_reads_the_task_yaml_we_write_as_the_same_task(home, spec, kw):
    sky = pytest.importorskip("sky")
    s = spec_from_dict(spec)
    prepared = prepare_launch(s, plan_job(s, include_local=False), "cloud", stage=False, **kw)
    ours = task_config(prepared.task_plan)
    assert not (home / "gpuplan").exists()  # stage=False wrote nothing
    assert not any(k.startswith("_") for k in ours["resources"])
    theirs = sky.Task.from_yaml_config(task_config(prepared.task_plan, redact=False)).to_yaml_config()
    from sky.task import redact_task_yaml_dict

    redact_task_yaml_dict(theirs)
    theirs["resources"].setdefault("disk_size", sky.Resources().disk_size)  # SkyPilot omits its default
    assert _without_private(theirs) == ours
    if "file_mounts" in ours:  # the one private field SkyPilot adds back itself
        assert theirs["resources"]["_requires_fuse"] is True


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from launch.task import Bucket, TaskPlan, config_yaml  # noqa: E402

_names = st.from_regex(r"gpuplan-[a-z0-9]{1,20}-[0-9a-f]{6}", fullmatch=True)
_secret_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=8,
                         max_size=40).map(lambda v: f"SeCrEt:{v}:")  # a value no other field can contain
_buckets = st.one_of(
    st.none(),
    st.builds(Bucket, name=st.from_regex(r"[a-z0-9][a-z0-9-]{2,30}[a-z0-9]", fullmatch=True),
              store=st.sampled_from(["S3", "GCS"])),
    st.builds(Bucket, source=st.from_regex(r"(s3|gs)://[a-z0-9][a-z0-9-]{2,30}[a-z0-9]", fullmatch=True)),
)
_plans = st.builds(
    TaskPlan, name=_names, workdir=st.just(Path("/tmp/never-staged")), setup=st.just("set -e\npip install x"),
    run=st.sampled_from(["python -m train --config job.yaml", "torchrun -m train\n--config job.yaml"]),
    infra=st.sampled_from(["aws/us-east-1", "gcp/us-central1", "lambda/us-east-1", None]),
    accelerators=st.one_of(st.none(), st.builds("{}:{}".format, st.sampled_from(["H100", "A100-80GB", "L4"]),
                                                 st.sampled_from([1, 2, 4, 8]))),
    nodes=st.integers(1, 4), spot=st.booleans(), disk_size=st.one_of(st.none(), st.integers(50, 4096)),
    bucket=_buckets, secrets=st.dictionaries(st.sampled_from(["HF_TOKEN", "WANDB_API_KEY"]), _secret_values),
    envs=st.fixed_dictionaries({"GPUPLAN_JOB": _names}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=_plans)
def test_the_printed_task_yaml_parses_back_to_the_task_and_never_holds_a_secret_value(plan):
    text = config_yaml(task_config(plan), plan.secrets)
    for value in plan.secrets.values():
        assert value not in text
    doc = yaml.safe_load(text)
    assert doc == task_config(plan)
    assert not any(k.startswith("_") for k in doc.get("resources", {}))
    assert doc["num_nodes"] == plan.nodes and ("file_mounts" in doc) == (plan.bucket is not None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=_plans)
def test_skypilot_loads_any_task_we_write_to_the_same_resources(plan):
    sky = pytest.importorskip("sky")
    task = sky.Task.from_yaml_config(task_config(plan, redact=False))
    (r,) = list(task.resources)
    assert task.num_nodes == plan.nodes and task.name == plan.name
    assert bool(r.use_spot) == plan.spot
    if plan.accelerators:
        name, count = plan.accelerators.split(":")
        assert r.accelerators == {name: int(count)}
    if plan.bucket is not None:
        assert r.requires_fuse  # what the private `_requires_fuse` field would have said, derived by SkyPilot
    assert {k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
            for k, v in (task.secrets or {}).items()} == plan.secrets
