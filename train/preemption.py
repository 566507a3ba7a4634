"""SIGTERM handling: spot VMs and Kubernetes send SIGTERM before they kill a job.

The handler only sets a flag; the training loop checks it after each optimizer step, saves a
checkpoint and exits with EXIT_PREEMPTED. 143 is 128 + SIGTERM(15), the status a shell reports for
a job killed by SIGTERM, so schedulers that restart killed jobs treat this exit the same way, while
`subprocess` callers can still tell it from a hard kill (returncode -15).
"""
from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a SpecError: bad job spec, data or model
EXIT_PREEMPTED = 143  # SIGTERM received; a checkpoint was saved; run the same command again to resume


class PreemptionWatch:
    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.requested = True

    def install(self) -> "PreemptionWatch":
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
