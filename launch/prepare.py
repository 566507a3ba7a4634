"""Decide a launch: which option, which name, what runs where, what it should cost. Starts nothing.

`prepare_launch` turns a job spec plus the plan document into a `Prepared` launch; `launch.submit` carries it
out (SkyPilot or a local process), and `--dry-run` only prints it. SkyPilot is not imported here.
"""
from __future__ import annotations

import dataclasses
import getpass
import hashlib
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from launch.bundle import SPEC_NAME, default_launch_root, stage_bundle, train_requirements
from launch.choose import choose_option
from launch.commands import disk_size_gib, local_command, run_command, secrets_from_env, setup_command
from launch.local_infra import LocalInfra, detect_local_infra
from launch.task import OUTPUT_MOUNT, TaskPlan, choose_bucket, sky_accelerator
from pricing.cache import write_atomic
from train.preemption import NOTICE_S  # torch-free: the spot notice per provider
from train.spec import JobSpec, SpecError, dump_spec

PROVIDERS = ("aws", "gcp", "azure", "lambda", "runpod")
DEFAULT_IDLE_MINUTES = 10  # autostop (then autodown) after this many idle minutes once the job ends


@dataclass
class Prepared:
    target: str  # cloud | local
    mode: str  # "managed-job" (spot) | "cluster" (on-demand, local k8s/ssh) | "direct"
    name: str  # cluster / managed job name
    spec: JobSpec  # the spec that runs (output_dir as seen by the trainer)
    option: dict[str, Any] | None
    bundle: Path  # folder with job.yaml (and train/ for SkyPilot runs)
    task_plan: TaskPlan | None = None
    local: LocalInfra | None = None
    argv: list[str] | None = None  # direct run
    idle_minutes: int | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    spec_yaml: str = ""  # the job.yaml shipped in the bundle, byte for byte (dry runs print it)

    @property
    def spec_path(self) -> Path:
        return self.bundle / SPEC_NAME


def job_name(spec: JobSpec, target: str, provider: str | None) -> str:
    """A valid SkyPilot cluster/job name: gpuplan-<job or model>-<6 hex of the spec and target>."""
    base = spec.name or os.path.basename(spec.model.rstrip("/")) or "job"
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:24].strip("-") or "job"
    digest = hashlib.sha256(f"{dump_spec(spec)}|{target}|{provider}".encode()).hexdigest()[:6]
    return f"gpuplan-{slug}-{digest}"


def _user_tag() -> str:
    """6 hex of user@host, so auto-named buckets (a global namespace on S3/GCS) do not collide between users."""
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no login name in some containers
        who = socket.gethostname()
    return hashlib.sha256(who.encode()).hexdigest()[:6]


def format_cost(option: Mapping[str, Any] | None) -> str:
    """One line: what runs where and what it should cost (from the plan, not re-priced)."""
    if not option:
        return "unknown (no local cost profile chosen)"
    where = option.get("instance_type") or option.get("provider")
    region = f", {option['region']}" if option.get("region") else ""
    kind = "local" if option.get("target") == "local" else ("spot" if option.get("spot") else "on-demand")
    nodes = f" on {option['nodes']} nodes" if (option.get("nodes") or 1) > 1 else ""
    head = f"{option.get('gpus')}x {option.get('gpu')} {option.get('provider')} {where}{nodes} ({kind}{region})"
    rate = option.get("usd_per_hour")
    hours, cost = option.get("hours"), option.get("cost_usd")
    if hours is not None and cost is not None:
        over = option.get("overhead_factor") or 1.0
        extra = f", incl. x{over:.2f} spot preemption overhead" if over and over > 1.0 else ""
        line = f"{head}: ${rate:,.2f}/h x {hours:,.2f} h = ${cost:,.2f} estimated{extra}"
        total, startup = option.get("cost_with_startup_usd"), option.get("startup_hours")
        if total is not None and startup is not None:
            line += (f"; with {startup * 60:,.0f} min of start-up (provisioning, setup, downloads, upload): "
                     f"${total:,.2f}, result in {option.get('time_to_result_hours', hours):,.2f} h")
        return line
    return f"{head}: ${rate:,.2f}/h (duration unknown: give dataset_tokens or dataset_examples for a total)"


# The job-spec fields an option's tuned configuration may set (planner.decide.tune.CONFIG_FIELDS; launch does
# not import the planner's internals, only its result document).
CONFIG_FIELDS = ("batch_size", "grad_accum", "gradient_checkpointing", "chunked_loss", "parallel")


def apply_config(spec: JobSpec, option: Mapping[str, Any] | None) -> tuple[JobSpec, str]:
    """The spec with the configuration the plan priced for `option`, and a YAML comment saying what changed.

    The plan prices every option in the fastest configuration that fits it with the job's global batch
    (`gpuplan plan --as-written` prices the job's own micro batch, checkpointing, loss and parallelism, with
    only the accumulation following the GPU count); launch runs exactly that.
    """
    config = dict((option or {}).get("config") or {})
    changes = {k: v for k, v in config.items() if k in CONFIG_FIELDS and getattr(spec, k) != v}
    if not changes:
        return spec, ""
    tuned = dataclasses.replace(spec, **changes)
    said = ", ".join(f"{k}: {getattr(spec, k)} -> {v}" for k, v in changes.items())
    return tuned, f"# gpuplan plan priced this option with: {said} (same global batch as the job as written)\n"


def _ship_data(spec: JobSpec, bundle_files: dict[str, Path]) -> JobSpec:
    """A local data file travels in the bundle as data/<name>; a hub dataset id stays as it is."""
    path = spec.data.path
    if path and os.path.isfile(path):
        rel = f"data/{os.path.basename(path)}"
        bundle_files[rel] = Path(path)
        return dataclasses.replace(spec, data=dataclasses.replace(spec.data, path=rel))
    return spec


def _add_files(bundle: Path, files: dict[str, Path]) -> None:
    for rel, src in files.items():
        dst = bundle / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _stage(spec_yaml: str, dest: Path, files: dict[str, Path], stage: bool) -> Path:
    """Stage the bundle at dest (train/, job.yaml, data files), or only name it on a dry run."""
    if not stage:
        return dest
    bundle = stage_bundle(spec_yaml, dest)
    _add_files(bundle, files)
    return bundle


def prepare_launch(spec: JobSpec, plan: Mapping[str, Any], target: str, *, provider: str | None = None,
                   region: str | None = None, gpu: str | None = None, gpus: int | None = None,
                   spot: bool | None = None, bucket: str | None = None, infra: str | None = None,
                   local_profile: bool = False, idle_minutes: int = DEFAULT_IDLE_MINUTES,
                   launch_root: Path | None = None, environ: Mapping[str, str] | None = None,
                   gpus_here: list[str] | None = None, stage: bool = True) -> Prepared:
    """Everything a launch needs, decided up front. Raises SpecError for bad input.

    ``gpus`` is GPUs per node (as the spec's field). ``local_profile``: the plan was made with the user's
    chosen local profile(s). ``gpus_here`` (canonical GPU names) overrides GPU detection for direct runs.
    ``stage=False`` (dry runs) decides everything but writes nothing: ``bundle`` is where a launch would stage.
    """
    environ = os.environ if environ is None else environ
    if provider is not None and provider not in PROVIDERS:
        raise SpecError("--provider", f"{provider!r} is not one of {', '.join(PROVIDERS)}",
                        f"use one of {', '.join(PROVIDERS)}")
    if target == "local" and (provider or spot or region):
        flag = "--provider" if provider else "--spot" if spot else "--region"
        raise SpecError(flag, "applies to --target cloud only", "drop it, or use --target cloud")
    if idle_minutes is not None and idle_minutes < 0:
        raise SpecError("--idle-minutes", "must be 0 or more", "give minutes, e.g. 10")
    root = Path(launch_root) if launch_root else default_launch_root()
    if target == "cloud":
        if infra:
            raise SpecError("--infra", "applies to --target local only", "use --provider/--region for clouds")
        option = choose_option(plan, "cloud", provider=provider, region=region, gpu=gpu, gpus_per_node=gpus,
                               spot=spot)
        assert option is not None
        return _prepare_cloud(spec, plan, option, bucket, idle_minutes, root, environ, stage)
    if target == "local":
        if bucket:
            raise SpecError("--bucket", "applies to --target cloud only", "drop it for a local run")
        return _prepare_local(spec, plan, gpu, gpus, infra, local_profile, root, environ, gpus_here, stage)
    raise SpecError("--target", f"{target!r} is not one of cloud, local", "use cloud or local")


def _prepare_cloud(spec: JobSpec, plan: Mapping[str, Any], option: dict[str, Any], bucket: str | None,
                   idle_minutes: int, root: Path, environ: Mapping[str, str], stage: bool = True) -> Prepared:
    provider = str(option["provider"])
    spot = bool(option.get("spot"))
    nodes = int(option.get("nodes") or 1)
    per_node = max(1, int(option["gpus"]) // nodes)
    name = job_name(spec, "cloud", provider)
    out = choose_bucket(provider, bucket, spot, default_name=f"{name}-{_user_tag()}")
    files: dict[str, Path] = {}
    remote = _ship_data(spec, files)
    output_dir = f"{OUTPUT_MOUNT}/{name}" if out is not None else spec.output_dir
    remote = dataclasses.replace(remote, gpu=option.get("gpu"), gpus=per_node, nodes=nodes, output_dir=output_dir)
    remote, header = apply_config(remote, option)
    notes = []
    if header:
        notes.append(header[2:].strip())
    if option.get("price_flag", "normal") != "normal":
        notes.append(f"the plan flags this price {option['price_flag']}: {option.get('price_note') or 'see gpuplan plan'}"
                     "; check it before relying on the estimate")
    if option.get("keeps_global_batch") is False:
        notes.append(f"{option.get('gpus')} GPUs cannot keep the job's global batch: it grows to "
                     f"{option.get('global_batch_tokens') or 0:,} tokens per step (a different recipe)")
    if out is None:
        notes.append(f"outputs stay on the cluster's disk ({provider} has no object store); copy them with "
                     f"`rsync -Pavz {name}:~/sky_workdir/{spec.output_dir} .` before autodown, or pass --bucket")
    secrets = secrets_from_env(environ)
    spec_yaml = header + dump_spec(remote)
    bundle = _stage(spec_yaml, root / name, files, stage)
    tp = TaskPlan(
        name=name, workdir=bundle, setup=setup_command(train_requirements()),
        run=run_command(nodes, per_node, grace_s=NOTICE_S.get(provider) if spot else None), infra=f"{provider}/{option['region']}" if option.get("region") else provider,
        accelerators=sky_accelerator(provider, str(option["gpu"]), per_node, option.get("instance_type")),
        nodes=nodes, spot=spot, disk_size=disk_size_gib(plan.get("model"), spec.method, spec.merge_adapter),
        bucket=out, secrets=secrets, envs={"GPUPLAN_JOB": name},
    )
    return Prepared("cloud", "managed-job" if spot else "cluster", name, remote, option, bundle, task_plan=tp,
                    idle_minutes=None if spot else idle_minutes, secrets=secrets, notes=notes, spec_yaml=spec_yaml)


def detect_gpus() -> list[str]:
    """Canonical names of this machine's NVIDIA GPUs (nvidia-ml-py via pricing.local; [] without a driver)."""
    from pricing.local import detect_local_gpus

    return [str(g.get("gpu") or g.get("name")) for g in detect_local_gpus()]


def _local_option(plan: Mapping[str, Any], gpu: str | None, gpus: int | None, local_profile: bool
                  ) -> dict[str, Any] | None:
    """The local profile that prices this run: the one the user named, or the one with the GPU in use.

    Without either, no preset is assumed to describe the user's machine, so the cost is left unknown.
    """
    if not local_profile and not gpu:
        return None
    try:
        return choose_option(plan, "local", gpu=gpu, gpus_per_node=gpus)
    except SpecError:
        if local_profile:
            raise
        return None  # a GPU with no local cost profile: run anyway, cost unknown


def _prepare_local(spec: JobSpec, plan: Mapping[str, Any], gpu: str | None, gpus: int | None, infra: str | None,
                   local_profile: bool, root: Path, environ: Mapping[str, str], gpus_here: list[str] | None,
                   stage: bool = True) -> Prepared:
    local = detect_local_infra(infra)
    if local.kind == "direct":
        here = detect_gpus() if gpus_here is None else list(gpus_here)
        option = _local_option(plan, gpu or (here[0] if here else None), None, local_profile)
        want = int(option["gpus"]) if option else (gpus or spec.gpus) * spec.nodes
        # Without a GPU the job's layout still runs: one CPU process per GPU it asks for (the gloo backend; the
        # trainer picks it), up to this machine's cores, so a DDP/FSDP job is tested here as it will run there.
        cpus = os.cpu_count() or 1
        nproc = min(want, len(here)) if here else max(1, min(want, cpus))
        notes = []
        if not here:
            notes.append(f"no NVIDIA GPU found (nvidia-ml-py): running {nproc} process{'es' if nproc > 1 else ''} "
                         "on the CPU" + (" (gloo backend)" if nproc > 1 else ""))
        elif want > len(here):
            notes.append(f"the plan wants {want} GPUs, this machine has {len(here)}: using {len(here)}")
        if option is None:
            notes.append("no local cost profile matches this machine: pass --local-profile NAME|FILE for a cost")
        spec, header = apply_config(spec, option)
        name = job_name(spec, "local", None)
        bundle = root / name
        spec_yaml = header + dump_spec(spec)
        if stage:
            write_atomic(bundle / SPEC_NAME, spec_yaml)
        argv = local_command(sys.executable, nproc, str(bundle / SPEC_NAME))
        return Prepared("local", "direct", name, spec, option, bundle, local=local, argv=argv, notes=notes,
                        spec_yaml=spec_yaml)
    # SkyPilot on the user's own Kubernetes context or SSH node pool.
    option = _local_option(plan, gpu, gpus, local_profile)
    name = job_name(spec, "local", local.infra)
    gpu_name = (option or {}).get("gpu") or gpu or spec.gpu
    nodes = int((option or {}).get("nodes") or spec.nodes)
    per_node = max(1, int(option["gpus"]) // nodes) if option else (gpus or spec.gpus)
    files: dict[str, Path] = {}
    remote = _ship_data(spec, files)
    remote = dataclasses.replace(remote, gpu=gpu_name, gpus=per_node, nodes=nodes)
    remote, header = apply_config(remote, option)
    secrets = secrets_from_env(environ)
    spec_yaml = header + dump_spec(remote)
    bundle = _stage(spec_yaml, root / name, files, stage)
    notes = [f"outputs stay on the {local.kind} node: copy them with "
             f"`rsync -Pavz {name}:~/sky_workdir/{spec.output_dir} .`, then `sky down {name}`"]
    if option is None:
        notes.append("no local cost profile chosen: pass --local-profile NAME|FILE to price the run (and let "
                     "SkyPilot report its cost)")
    if not gpu_name:
        notes.append("no GPU type known (no --gpu, no profile): the task asks for no accelerators")
    tp = TaskPlan(
        name=name, workdir=bundle, setup=setup_command(train_requirements()),
        run=run_command(nodes, per_node if gpu_name else 1), infra=local.infra,
        accelerators=f"{gpu_name}:{per_node}" if gpu_name else None, nodes=nodes,
        secrets=secrets, envs={"GPUPLAN_JOB": name},
    )
    return Prepared("local", "cluster", name, remote, option, bundle, task_plan=tp, local=local,
                    secrets=secrets, notes=notes, spec_yaml=spec_yaml)


def local_price(prepared: Prepared, plan: Mapping[str, Any]) -> tuple[str, str, float] | None:
    """(kube context, GPU, $/GPU-hour) to write into SkyPilot's config for a local k8s/ssh launch."""
    if prepared.local is None or prepared.local.context is None or not prepared.option:
        return None
    opt = prepared.option
    rate = opt.get("usd_per_gpu_hour")
    for prof in plan.get("local_profiles") or []:
        if prof.get("name") == opt.get("instance_type") and prof.get("usd_per_gpu_hour") is not None:
            rate = prof["usd_per_gpu_hour"]
    if rate is None and opt.get("usd_per_hour") and opt.get("gpus"):
        rate = float(opt["usd_per_hour"]) / int(opt["gpus"])
    if rate is None:
        return None
    return prepared.local.context, str(opt.get("gpu")), float(rate)
