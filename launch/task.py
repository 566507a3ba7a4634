"""The SkyPilot task for a launch: written by us as task YAML (`task_config`), read by SkyPilot (`build_task`).

`--dry-run` prints `task_config` and needs no SkyPilot; a real launch hands the same config to
`sky.Task.from_yaml_config`, which validates it. Loading it is offline and credential-free (checked against
skypilot 0.14.1: `infra=` and `accelerators=` read no catalog; `instance_type=` would, so it is left to
SkyPilot's optimizer, which picks the cheapest instance with those accelerators in the planned region, as the
plan did). `import sky` costs 3-4 s, so it happens only inside `build_task` and `task_yaml`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from train.spec import SpecError

# Where the output bucket is mounted on the training machine; the job's output_dir sits below it.
OUTPUT_MOUNT = "/gpuplan-outputs"

# SkyPilot object store per provider, for a bucket given by bare name (sky.data.storage.StoreType).
PROVIDER_STORES = {"aws": "S3", "gcp": "GCS", "azure": "AZURE"}

# Bucket URL schemes SkyPilot storage mounts (sky/data/storage.py).
BUCKET_SCHEMES = ("s3://", "gs://", "https://", "r2://", "cos://", "oci://", "nebius://", "cw://")

# Where a provider's SkyPilot catalog names a GPU differently from gpuplan's canonical name (which follows
# SkyPilot's common names): RunPod lists H100/H200 as H100-SXM/H200-SXM (catalogs/v8/runpod/vms.csv);
# GCP's a3-megagpu-8g carries H100-MEGA (catalogs/v8/gcp/vms.csv).
_ACCEL_NAMES = {("runpod", "H100"): "H100-SXM", ("runpod", "H200"): "H200-SXM"}

# Managed-job recovery: pinned to the planned region (price and bucket locality), so FAILOVER (retry there;
# sky/jobs/recovery_strategy.py). User-code errors are not retried; preemptions always are, including the
# trainer's own exit after a SIGTERM preemption notice (train.preemption.EXIT_PREEMPTED = 143, i.e. 128+SIGTERM).
EXIT_PREEMPTED = 143
JOB_RECOVERY = {"strategy": "FAILOVER", "max_restarts_on_errors": 0, "recover_on_exit_codes": [EXIT_PREEMPTED]}

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass
class Bucket:
    """The output bucket: an existing URL (``source``), or a name SkyPilot creates in ``store``."""

    name: str | None = None
    source: str | None = None
    store: str | None = None  # S3 | GCS | AZURE

    @property
    def label(self) -> str:
        return self.source or f"{(self.store or '').lower()}://{self.name}"


@dataclass
class TaskPlan:
    """Everything the task needs, decided before SkyPilot is imported."""

    name: str
    workdir: Path
    setup: str
    run: str
    infra: str | None  # aws/us-east-1, k8s/<ctx>, ssh/<pool>
    accelerators: str | None  # "H100:8"
    nodes: int = 1
    spot: bool = False
    disk_size: int | None = None
    bucket: Bucket | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)


def sky_accelerator(provider: str, gpu: str, per_node: int, instance_type: str | None = None) -> str:
    name = _ACCEL_NAMES.get((provider, gpu), gpu)
    if provider == "gcp" and gpu == "H100" and (instance_type or "").startswith("a3-megagpu"):
        name = "H100-MEGA"
    return f"{name}:{per_node}"


def choose_bucket(provider: str, bucket: str | None, spot: bool, default_name: str) -> Bucket | None:
    """The output bucket, or None (outputs stay on the cluster's disk).

    A spot run always needs one (a recovered job resumes from checkpoints the preempted VM wrote there); on a
    provider without a SkyPilot object store that means a bucket URL. On-demand runs get one on providers that
    have a store, so the adapter outlives autodown.
    """
    if bucket:
        if "://" in bucket:
            if not bucket.startswith(BUCKET_SCHEMES):
                raise SpecError("--bucket", f"{bucket!r} is not a bucket URL SkyPilot can mount",
                                "use s3://NAME, gs://NAME, r2://NAME or an Azure https://... container URL")
            return Bucket(source=bucket.rstrip("/"))
        if not _BUCKET_NAME.match(bucket):
            raise SpecError("--bucket", f"{bucket!r} is not a valid bucket name",
                            "use 3-63 lowercase letters, digits, dots or hyphens")
        store = PROVIDER_STORES.get(provider)
        if store is None:
            raise SpecError("--bucket", f"{provider} has no object store SkyPilot can create {bucket!r} in",
                            "give a bucket URL such as s3://NAME or gs://NAME")
        return Bucket(name=bucket, store=store)
    store = PROVIDER_STORES.get(provider)
    if store is not None:
        return Bucket(name=default_name, store=store)
    if spot:
        raise SpecError("--bucket", f"a spot run on {provider} needs a bucket for its checkpoints "
                                    f"({provider} has no object store SkyPilot can create one in)",
                        "give --bucket s3://NAME or gs://NAME, or drop --spot")
    return None


REDACTED = "<redacted>"


def task_config(plan: TaskPlan, *, redact: bool = True) -> dict[str, Any]:
    """The SkyPilot task YAML (as a dict) for the plan, written by us: no SkyPilot import, no credentials.

    Keys follow SkyPilot's task YAML reference (name, resources{infra, accelerators, use_spot, job_recovery,
    disk_size}, num_nodes, setup, workdir, run, envs, secrets, file_mounts{path: {name|source, store,
    persistent, mode}}), in the order `sky.Task.to_yaml_config()` writes them. Private fields are left out:
    SkyPilot sets `resources._requires_fuse` itself when it loads a MOUNT_CACHED storage mount
    (sky/task.py `set_storage_mounts`). ``redact`` replaces secret values (for printing)."""
    resources: dict[str, Any] = {}
    if plan.infra:
        resources["infra"] = plan.infra
    if plan.accelerators:
        name, _, count = plan.accelerators.partition(":")
        resources["accelerators"] = {name: int(count or 1)}
    if plan.spot:
        resources["use_spot"] = True
        resources["job_recovery"] = {**JOB_RECOVERY, "recover_on_exit_codes": list(JOB_RECOVERY["recover_on_exit_codes"])}
    if plan.disk_size is not None:
        resources["disk_size"] = int(plan.disk_size)
    config: dict[str, Any] = {"name": plan.name}
    if resources:
        config["resources"] = resources
    config.update(num_nodes=plan.nodes, setup=plan.setup, workdir=str(plan.workdir), run=plan.run)
    if plan.envs:
        config["envs"] = dict(plan.envs)
    if plan.secrets:
        config["secrets"] = {k: REDACTED if redact else v for k, v in plan.secrets.items()}
    if plan.bucket is not None:
        b = plan.bucket
        mount: dict[str, Any] = {"source": b.source} if b.source else {"name": b.name}
        if not b.source and b.store:
            mount["store"] = b.store
        mount.update(persistent=True, mode="MOUNT_CACHED")
        config["file_mounts"] = {OUTPUT_MOUNT: mount}
    return config


def build_task(plan: TaskPlan) -> Any:
    """The sky.Task SkyPilot launches: SkyPilot's own reading of `task_config` (import sky happens here), so
    the YAML `--dry-run` prints is the task that runs."""
    import sky

    return sky.Task.from_yaml_config(task_config(plan, redact=False))


def config_yaml(config: dict[str, Any], secrets: dict[str, str] | None = None) -> str:
    """A task config as SkyPilot YAML text, secret values redacted wherever they appear."""
    config = dict(config)
    if config.get("secrets"):
        config["secrets"] = {k: REDACTED for k in config["secrets"]}
    text = yaml.dump(config, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)
    for value in (secrets or {}).values():  # belt and braces: no secret value leaves in any form
        if value:
            text = text.replace(value, REDACTED)
    return text


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (setup, run) as `|` blocks, as people write SkyPilot YAML."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def task_yaml(task: Any, secrets: dict[str, str] | None = None) -> str:
    """A sky.Task as SkyPilot YAML (what `sky launch` takes), with secret values redacted."""
    from sky.task import redact_task_yaml_dict

    config = task.to_yaml_config()
    redact_task_yaml_dict(config)
    if not config.get("volumes"):
        config.pop("volumes", None)
    return config_yaml(config, secrets)
