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


def check_output_file(path: str | os.PathLike[str], field: str = "output") -> Path:
    """Refuse, before any work starts, an output path that write_atomic could not or must not replace.

    Only a regular file (or nothing) may be replaced: never a directory, a FIFO, a socket or a device
    (`-o /dev/null` run as root would otherwise swap the system's null device for a regular file).
    """
    import stat

    from pricing.errors import PricingInputError

    text = os.fspath(path)
    if not text or not text.strip():
        raise PricingInputError(field, "empty output path", "give a file name")
    if "\x00" in text:
        raise PricingInputError(field, "the output path contains a NUL character", "give a file name")
    p = Path(text)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise PricingInputError(field, f"{text}: a parent of the path is a file", "give a path inside a folder") from None
    except OSError as exc:
        raise PricingInputError(field, f"{text}: {exc.strerror or exc}", "give another output path") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise PricingInputError(field, f"{text} is a directory", "give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise PricingInputError(field, f"{text} is not a regular file (a device, FIFO or socket); only regular "
                                           "files are replaced", "give a file name")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise PricingInputError(field, f"{parent} is a file, not a folder", "give a path inside a folder")
    return p


def check_output_dir(path: str | os.PathLike[str], field: str = "output") -> Path:
    """Refuse, before any work starts, an output folder that is empty, a file, or under a file."""
    from pricing.errors import PricingInputError

    text = os.fspath(path)
    if not text or not text.strip():
        raise PricingInputError(field, "empty output folder", "give a folder name (e.g. report/)")
    if "\x00" in text:
        raise PricingInputError(field, "the output path contains a NUL character", "give a folder name")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise PricingInputError(field, f"{text} exists and is not a folder", "give a folder name")
    parent = p
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise PricingInputError(field, f"{parent} is a file, not a folder", "give a path inside a folder")
    return p


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, mode: int | None = None) -> Path:
    """Write text or bytes to `path` atomically: temp file in the same directory, fsync, os.replace.

    A reader, or a crash, sees the old file or the whole new one, never half of either. The result keeps an
    existing file's permissions; a new file gets `mode`, or the usual 0o666 minus the umask (mkstemp alone
    would leave every file owner-only). The planner, reports and launch write through this one function;
    the shipped trainer keeps its own copy (train/fsio.py) because it imports nothing of ours.
    """
    path = check_output_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from pricing.errors import PricingInputError

        raise PricingInputError("output", f"{path.parent} is not a folder", "give a path inside a folder") from None
    if path.exists():
        final_mode = path.stat().st_mode & 0o777
    elif mode is not None:
        final_mode = mode
    else:
        umask = os.umask(0)
        os.umask(umask)
        final_mode = 0o666 & ~umask
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, final_mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
