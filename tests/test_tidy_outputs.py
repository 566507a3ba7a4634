"""Every output path the README's commands and the example specs write into the checkout is ignored by git,
so following the README never leaves untracked files behind (launch staging and price caches live outside it)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def readme_output_paths() -> set[str]:
    """Paths after `-o`, `--output`, `--output-dir` and `--report` in the README's command lines."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"(?:^|\s)(?:-o|--output|--output-dir|--report)\s+([^\s`]+)", text)
    return {p for p in found if p.upper() != p and not p.startswith(("$", "~", "/"))}  # not DIR, not absolute


def example_output_dirs() -> set[str]:
    out = set()
    for path in (REPO / "examples").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(spec, dict) and isinstance(spec.get("output_dir"), str):
            out.add(spec["output_dir"])
    return out


def test_the_readme_and_examples_name_output_paths():
    assert "report/" in readme_output_paths() and any(p.startswith("runs/") for p in readme_output_paths())
    assert example_output_dirs() and all(p.startswith("runs/") for p in example_output_dirs())


@pytest.mark.parametrize("path", sorted(readme_output_paths() | example_output_dirs()))
def test_output_path_is_ignored_by_git(path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    probe = f"{path.rstrip('/')}/summary.json"
    r = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=REPO, capture_output=True)
    assert r.returncode == 0, f"{probe} is not ignored by .gitignore"
