"""Reading files a user (or a download) handed us, without trusting them.

Every reader of the price layer and the planner's config.json reader goes through here:
- only regular files are opened (a FIFO would block forever, a directory or device is never what was meant),
  and only up to a size limit checked before reading (a 50 MB document is refused in microseconds);
- text must be UTF-8;
- JSON: duplicate keys, NaN/Infinity and numbers that overflow to infinity (1e400) are refused, and nesting is
  bounded (the C parser would otherwise recurse until RecursionError);
- YAML: anchors/aliases are refused (the "billion laughs" expansion), nesting is bounded, duplicate keys
  are refused (PyYAML silently keeps the last one).
Problems are raised through `error(field, problem, fix)` (PricingInputError by default; the planner passes
train.spec.SpecError), which the CLI prints as one line with exit code 2. Standard library + PyYAML only.
"""
from __future__ import annotations

import math
import os
import stat
from typing import Any, Callable

from pricing.errors import PricingInputError

ErrorFactory = Callable[[str, str, str], Exception]
MAX_DEPTH = 64  # deeper than any config, catalog or profile we read (HF configs nest 2-3 levels)
MAX_YAML_DEPTH = 32


def check_regular_file(path: str | os.PathLike[str], field: str, max_bytes: int,
                       error: ErrorFactory = PricingInputError) -> os.stat_result:
    """stat() the path and refuse anything but an existing regular file of at most max_bytes."""
    p = os.fspath(path)
    if not p:
        raise error(field, "empty path", "give a file path")
    if "\x00" in p:
        raise error(field, "the path contains a NUL character", "give a file path")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(field, f"{_short(p)} does not exist", "check the path") from None
    except NotADirectoryError:
        raise error(field, f"{_short(p)} does not exist (a parent is a file)", "check the path") from None
    except OSError as exc:
        raise error(field, f"cannot read {_short(p)}: {exc.strerror or exc}", "check the path and permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(field, f"{_short(p)} is a directory", "give a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(field, f"{_short(p)} is not a regular file (a FIFO, socket or device)", "give a regular file")
    if st.st_size > max_bytes:
        raise error(field, f"{_short(p)} is {st.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit",
                    "give the right file")
    return st


def read_bytes(path: str | os.PathLike[str], field: str, max_bytes: int,
               error: ErrorFactory = PricingInputError) -> bytes:
    check_regular_file(path, field, max_bytes, error)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the check, open() still returns at once
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise error(field, f"{_short(os.fspath(path))} is not a regular file", "give a regular file")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(field, f"cannot read {_short(os.fspath(path))}: {exc.strerror or exc}",
                    "check the path and permissions") from None
    if len(data) > max_bytes:
        raise error(field, f"{_short(os.fspath(path))} is over the {max_bytes / 1e6:g} MB limit", "give the right file")
    return data


def read_text(path: str | os.PathLike[str], field: str, max_bytes: int,
              error: ErrorFactory = PricingInputError) -> str:
    data = read_bytes(path, field, max_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(field, f"{_short(os.fspath(path))} is not UTF-8 text (byte {exc.start})",
                    "give a text file saved as UTF-8") from None


def _short(text: str, limit: int = 120) -> str:
    """A path or value cut for an error line (a 200 kB value must not become a 200 kB message)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------
class _Refused(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"duplicate key {_short(k, 40)!r}")
        out[k] = v
    return out


def _constant(name: str) -> Any:
    raise _Refused(f"non-finite number {name}")


def _float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _Refused(f"number {_short(text, 40)} overflows")
    return v


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a parsed document (iterative: no recursion on hostile input); stops past `limit`."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        for c in (v.values() if isinstance(v, dict) else v):
            if isinstance(c, (dict, list)):
                stack.append((c, d + 1))
    return deepest


def loads_json(text: str, field: str, origin: str, error: ErrorFactory = PricingInputError) -> Any:
    """json.loads with duplicate keys, NaN/Infinity, overflowing numbers and deep nesting refused."""
    import json

    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float)
    except _Refused as exc:
        raise error(field, f"{origin}: {exc}", "fix the file") from None
    except json.JSONDecodeError as exc:
        raise error(field, f"{origin} is not valid JSON (line {exc.lineno}, column {exc.colno})", "fix the file") from None
    except RecursionError:
        raise error(field, f"{origin} is nested too deeply", f"at most {MAX_DEPTH} levels") from None
    except ValueError as exc:  # int() of a 5000-digit number (Python's int-string limit)
        raise error(field, f"{origin}: {_short(str(exc), 80)}", "fix the file") from None
    if depth_of(doc) > MAX_DEPTH:
        raise error(field, f"{origin} is nested too deeply", f"at most {MAX_DEPTH} levels")
    return doc


def read_json(path: str | os.PathLike[str], field: str, max_bytes: int,
              error: ErrorFactory = PricingInputError) -> Any:
    return loads_json(read_text(path, field, max_bytes, error), field, _short(os.fspath(path)), error)


# ----------------------------------------------------------------------------------------------
# YAML
# ----------------------------------------------------------------------------------------------
def loads_yaml(text: str, field: str, origin: str, error: ErrorFactory = PricingInputError) -> Any:
    """Safe YAML with aliases, deep nesting and duplicate keys refused."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader_cls):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise error(field, f"{origin} uses YAML anchors/aliases (& and *)", "write the values out in full")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise error(field, f"{origin} is nested too deeply", f"at most {MAX_YAML_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.load(text, Loader=_strict_loader(loader_cls))
    except yaml.YAMLError as exc:
        if isinstance(exc, _DuplicateKey):
            raise error(field, f"{origin}: {exc.args[0]}", "give each key once") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise error(field, f"{origin} is not valid YAML{where}", "fix the YAML syntax") from None
    except RecursionError:
        raise error(field, f"{origin} is nested too deeply", f"at most {MAX_YAML_DEPTH} levels") from None
    except (ValueError, OverflowError) as exc:
        if hasattr(exc, "one_line"):  # our own error, raised above
            raise
        # int() of a 5000-digit number (Python's int-string limit), a date out of range
        raise error(field, f"{origin}: a value cannot be read ({_short(str(exc), 80)})", "fix the value") from None


def read_yaml(path: str | os.PathLike[str], field: str, max_bytes: int,
              error: ErrorFactory = PricingInputError) -> Any:
    return loads_yaml(read_text(path, field, max_bytes, error), field, _short(os.fspath(path)), error)


class _DuplicateKey(Exception):
    pass


_LOADERS: dict[type, type] = {}


def _strict_loader(base: type) -> type:
    """A subclass of PyYAML's safe loader whose mappings refuse a key given twice."""
    import yaml

    if base in _LOADERS:
        return _LOADERS[base]

    class _Dup(_DuplicateKey, yaml.YAMLError):
        pass

    class Strict(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    k = (key_node.tag, key_node.value)
                    if k in seen:
                        raise _Dup(f"duplicate key {_short(key_node.value, 40)!r} (line {key_node.start_mark.line + 1})")
                    seen.add(k)
            return super().construct_mapping(node, deep=deep)

    _LOADERS[base] = Strict
    return Strict
