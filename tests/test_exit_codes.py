"""The exit codes the README's "Exit codes" section promises, command by command.

0 done; 2 bad input, missing credentials or a missing extra (one `error:` line on stderr, no traceback);
1 a runtime failure and 130 an interrupt are exercised where they can happen for real
(tests/test_refresh_cli_errors.py: an unreachable provider, Ctrl-C during a refresh; tests/test_launch_cli.py:
launch passes on the trainer's exit code).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JOB = str(REPO / "examples" / "llama3-8b-qlora.yaml")

CASES = [
    # (command line, exit code)
    (["--help"], 0),
    (["plan", JOB, "--gpu", "H100"], 0),
    (["plan", JOB, "--format", "json"], 0),
    (["prices", "--gpu", "H100", "--provider", "aws", "--format", "csv"], 0),
    (["launch", JOB, "--provider", "aws", "--dry-run"], 0),
    (["launch", JOB, "--provider", "aws"], 1),  # the `Launch?` prompt declined (no answer): nothing staged
    (["no-such-command"], 2),
    (["plan", JOB, "--gpu", "NOPE-9000"], 2),
    (["plan", "{tmp}/missing.yaml"], 2),
    (["prices", "--format", "xml"], 2),
    (["prices", "build-snapshot", "--from", "{tmp}/no-catalogs", "-o", "{tmp}/offers.json"], 2),
    (["prices", "refresh", "--provider", "aws"], 2),  # no credentials in this environment
    (["report", "{tmp}/missing.yaml", "-o", "{tmp}/report"], 2),
    (["launch", "{tmp}/missing.yaml", "--dry-run"], 2),
    (["launch", JOB, "--target", "local", "--provider", "aws", "--dry-run"], 2),
    (["check", "{tmp}/no-run"], 2),
]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GOOGLE_", "KUBECONFIG", "SKYPILOT_GLOBAL"))}
    e.update(HOME=str(tmp_path / "home"), GPUPLAN_CACHE_DIR=str(tmp_path / "cache"), AWS_CONFIG_FILE="/dev/null",
             AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true",
             SKYPILOT_DISABLE_LOCAL_API_SERVER="1", HF_HUB_OFFLINE="1",
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "home").mkdir()
    return e


@pytest.mark.parametrize("args, code", CASES, ids=[" ".join(a[:3]).replace(JOB, "JOB") for a, _ in CASES])
def test_each_command_exits_with_the_documented_code(args, code, env, tmp_path):
    if code == 1 and args[0] == "launch" and importlib.util.find_spec("sky") is None:
        pytest.skip("a real launch needs SkyPilot before it asks")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, "-m", "planner.cli", *argv], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == code, r.stderr[-2000:]
    assert "Traceback" not in r.stdout + r.stderr
    if code == 1 and args[0] == "launch":
        assert r.stderr.rstrip().endswith("aborted")
    if code == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert r.stdout == ""
    assert not (tmp_path / "home" / ".gpuplan").exists()  # nothing staged, even by a dry run


def test_the_readme_documents_every_exit_code():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ("0", "1", "2", "130"):
        assert f"| {code} |" in section
