"""The user's price cache (live refreshes): where it lives, atomic writes under a lock.

Default ~/.cache/gpuplan/prices/ (XDG_CACHE_HOME respected); GPUPLAN_CACHE_DIR overrides. A write goes to a
temp file in the same directory, is fsynced, then os.replace()d over the old file while holding an fcntl lock
on `<dir>/.lock`, so a crash or a concurrent refresh never leaves a half-written catalog.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    env = os.environ.get("GPUPLAN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpuplan" / "prices"


def live_file(provider: str, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"{provider}.json"


@contextlib.contextmanager
def locked(directory: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """Exclusive fcntl lock on directory/.lock (blocks other refreshes, not readers)."""
    import time

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another refresh holds {directory / '.lock'}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write text to path atomically (temp file in the same directory + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
