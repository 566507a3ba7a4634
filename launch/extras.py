"""Which gpuplan extra a launch needs, checked before anything is planned, staged or started.

A missing extra is the user's to fix, so it is an input error (`MissingExtraError`, a SpecError: one line,
exit 2) naming the pip command. Looked up with importlib.util.find_spec, which imports nothing (SkyPilot's
import alone costs 3-4 s).
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Iterable

from train.spec import SpecError

# The modules each extra brings (pyproject.toml [project.optional-dependencies]) that a launch path uses.
LAUNCH_MODULES = ("sky",)
TRAIN_MODULES = ("torch", "transformers", "peft", "safetensors")
QLORA_MODULES = ("bitsandbytes",)  # NF4 weights and the 8-bit optimizers


class MissingExtraError(SpecError):
    """A command needs an optional dependency that is not installed: ``extra`` names what to install."""

    def __init__(self, what: str, module: str, extra: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(what, f"needs {module}, which is not installed",
                         f"install it with: pip install 'gpuplan[{extra}]'")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module with no spec
        return False


def require(what: str, extra: str, modules: Iterable[str],
            installed: Callable[[str], bool] = _installed) -> None:
    """Raise MissingExtraError for the first of ``modules`` that is not installed."""
    for module in modules:
        if not installed(module):
            raise MissingExtraError(what, module, extra)


def train_modules(method: str, optimizer: str | None) -> tuple[str, ...]:
    """What the bundled trainer imports for this job on this machine."""
    needs_bnb = method == "qlora" or "8bit" in (optimizer or "")
    return TRAIN_MODULES + (QLORA_MODULES if needs_bnb else ())
