"""Carry out a prepared launch: SkyPilot (managed job or cluster) or a training process on this machine.

SkyPilot does status, logs and teardown well, so after submitting we stream the job's logs once and print
the `sky` commands to follow, stop and clean up; nothing of that is re-implemented here.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Callable, Mapping

from launch.prepare import Prepared, local_price
from launch.sky_config import set_local_gpu_price
from launch.task import build_task

Echo = Callable[[str], None]


def follow_up(prepared: Prepared) -> list[str]:
    """How to follow, stop and clean up, as `sky` commands."""
    name = prepared.name
    if prepared.mode == "managed-job":
        lines = [f"follow:   sky jobs logs -n {name}", "status:   sky jobs queue",
                 f"stop:     sky jobs cancel -n {name}"]
    elif prepared.mode == "cluster":
        lines = [f"follow:   sky logs {name}", f"status:   sky status {name}", f"stop:     sky cancel {name} -a",
                 f"clean up: sky down {name}"]
        if prepared.idle_minutes is not None:
            lines.append(f"(the cluster tears itself down after {prepared.idle_minutes} idle minutes)")
    else:
        return []
    tp = prepared.task_plan
    if tp is not None and tp.bucket is not None:
        lines.append(f"outputs:  {tp.bucket.label}/{name} (bucket kept; `sky storage delete {tp.bucket.name}` "
                     "removes a bucket gpuplan named)" if tp.bucket.name else f"outputs:  {tp.bucket.label}/{name}")
    return lines


def run_direct(prepared: Prepared, env: Mapping[str, str] | None = None) -> int:
    """Run the trainer here, its output streaming to ours; return its exit code.

    Ctrl-C reaches the child through the shared process group; we then wait for it so nothing is orphaned.
    """
    assert prepared.argv is not None
    proc = subprocess.Popen(prepared.argv, env=dict(env if env is not None else os.environ))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def submit_sky(prepared: Prepared, plan: Mapping[str, Any], echo: Echo) -> int:
    """Launch through SkyPilot's SDK (starts or uses its API server), stream logs, return the job's exit code."""
    import sky

    tp = prepared.task_plan
    assert tp is not None
    price = local_price(prepared, plan)
    if price is not None:
        path = set_local_gpu_price(*price)
        echo(f"SkyPilot pricing: {price[1]} at ${price[2]:.4f}/GPU-hour for context {price[0]} ({path})")
    task = build_task(tp)
    if prepared.mode == "managed-job":
        request = sky.jobs.launch(task, name=prepared.name)
        job_ids, _ = sky.stream_and_get(request)
        job_id = job_ids[0] if job_ids else None
        echo(f"managed job {prepared.name} (id {job_id}) submitted; streaming its logs")
        rc = sky.jobs.tail_logs(name=None if job_id else prepared.name, job_id=job_id, follow=True)
        return int(rc or 0)
    request = sky.launch(task, cluster_name=prepared.name,
                         idle_minutes_to_autostop=prepared.idle_minutes,
                         down=prepared.idle_minutes is not None)
    job_id, _ = sky.stream_and_get(request)
    echo(f"cluster {prepared.name}, job {job_id}; streaming its logs")
    return int(sky.tail_logs(prepared.name, job_id, follow=True) or 0)
