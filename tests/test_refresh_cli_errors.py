"""`gpuplan prices refresh` when it cannot refresh: missing SDK or credentials are the user's to fix (exit 2, one
line with the fix, no progress bar); an unreachable provider is a runtime failure (exit 1) that keeps the last
good catalog and says so only when there is one; Ctrl-C exits 130.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pricing.errors import PricingInputError
from pricing.refresh import _refused_credentials
from pricing.refresh.preflight import require_credentials, require_sdk

REPO = Path(__file__).resolve().parents[1]

# Credentials and config from nowhere: no files, no instance metadata, no gcloud.
NO_CLOUD = {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true", "CLOUDSDK_CONFIG": "/nonexistent",
            "GOOGLE_APPLICATION_CREDENTIALS": "", "NO_GCE_CHECK": "True", "GCE_METADATA_HOST": "127.0.0.1:9"}
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

WITHOUT = """
import sys
blocked = set(sys.argv[1].split(","))
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Refuse())
sys.argv = ["gpuplan", *sys.argv[2:]]
from planner.cli import main
main()
"""


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    drop = ("AWS_", "GOOGLE_", "GCLOUD", "CLOUDSDK")
    e = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    e.update(NO_CLOUD, HOME=str(tmp_path / "home"), GPUPLAN_CACHE_DIR=str(tmp_path / "cache"),
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    (tmp_path / "home").mkdir()
    return e


def gpuplan(args: list[str], env: dict[str, str], blocked: tuple[str, ...] = (), **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WITHOUT, ",".join(blocked) or "-", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, **kw)


def run(args: list[str], env: dict[str, str], blocked: tuple[str, ...] = ()) -> tuple[int, str, str]:
    p = gpuplan(args, env, blocked)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def test_aws_without_credentials_is_exit_2_with_how_to_give_them_and_no_progress_bar(env):
    rc, out, err = run(["prices", "refresh", "--provider", "aws"], env)
    assert rc == 2, err
    assert err.strip().splitlines() == [
        "error: --provider: no AWS credentials found; give AWS credentials: run `aws configure` (or `aws sso "
        "login`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"]
    assert "None" not in out + err and "kept the last good catalog" not in err and out == ""


def test_gcp_without_credentials_is_exit_2_with_how_to_give_them(env):
    rc, out, err = run(["prices", "refresh", "--provider", "gcp", "--project", "p"], env)
    assert rc == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: --provider: no GCP credentials found;")
    assert "gcloud auth application-default login" in line and "GOOGLE_APPLICATION_CREDENTIALS" in line


@pytest.mark.parametrize("provider, module, package, extra", [("aws", "boto3", "boto3", "aws"),
                                                              ("gcp", "google", "google-cloud-billing", "gcp")])
def test_missing_sdk_names_the_extra(env, provider, module, package, extra):
    rc, out, err = run(["prices", "refresh", "--provider", provider, "--project", "p"], env, blocked=(module,))
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.endswith(f"install it with: pip install 'gpuplan[{extra}]'") and f"needs {package}," in line


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("cached", [False, True])
def test_unreachable_provider_is_exit_1_and_mentions_a_kept_catalog_only_when_there_is_one(env, tmp_path, cached):
    env.update(FAKE_AWS)
    cache = tmp_path / "cache" / "aws.json"
    if cached:
        cache.parent.mkdir(parents=True)
        cache.write_text('{"offers": []}')
    url = f"http://127.0.0.1:{_closed_port()}"
    rc, out, err = run(["prices", "refresh", "--provider", "aws", "--region", "us-east-1", "--endpoint-url", url,
                        "--ec2-endpoint-url", url, "--timeout", "1", "--attempts", "1"], env)
    assert rc == 1, err
    (line,) = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert line.startswith("error: aws refresh failed: ") and "Traceback" not in err
    if cached:
        assert line.endswith(f"kept the last good catalog ({cache})")
        assert cache.read_text() == '{"offers": []}'
    else:
        assert "kept the last good catalog" not in line and line.endswith("plans use the bundled snapshot")
        assert not cache.exists()


def test_ctrl_c_during_a_refresh_exits_130_and_writes_nothing(env, tmp_path):
    """A provider that accepts the connection and never answers; SIGINT once the request is in flight."""
    env.update(FAKE_AWS)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = threading.Event()
    held = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            held.append(conn)
            accepted.set()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    p = gpuplan(["prices", "refresh", "--provider", "aws", "--region", "us-east-1", "--endpoint-url", url,
                 "--ec2-endpoint-url", url, "--timeout", "60"], env)
    try:
        assert accepted.wait(60), "the refresh never reached the fake provider"
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for c in held:
            c.close()
        server.close()
    assert p.returncode == 130, err
    assert "Traceback" not in err and not (tmp_path / "cache" / "aws.json").exists()


def test_preflight_accepts_found_credentials_and_anonymous_endpoints():
    require_credentials("aws", finder=lambda p: True)
    require_credentials("gcp", anonymous=True, finder=lambda p: False)
    with pytest.raises(PricingInputError, match="no GCP credentials found"):
        require_credentials("gcp", finder=lambda p: False)
    require_sdk("aws", installed=lambda m: True)
    with pytest.raises(PricingInputError, match=r"pip install 'gpuplan\[gcp\]'"):
        require_sdk("gcp", installed=lambda m: False)


class ClientError(Exception):
    def __init__(self, code: str) -> None:
        self.response = {"Error": {"Code": code, "Message": "..."}}


class Unauthenticated(Exception):
    pass


def test_refused_credentials_are_told_apart_from_network_failures():
    assert _refused_credentials(ClientError("AuthFailure")) == "AuthFailure"
    assert _refused_credentials(ClientError("InvalidClientTokenId")) == "InvalidClientTokenId"
    assert _refused_credentials(Unauthenticated("401")) == "Unauthenticated"
    assert _refused_credentials(ClientError("Throttling")) is None
    assert _refused_credentials(ConnectionError("refused")) is None


def test_the_progress_bar_appears_only_once_its_total_is_known():
    from pricing.refresh import Progress

    bar = Progress(True, "aws prices")
    bar.step("aws us-east-1: on-demand")  # a fetcher that fails before total(): nothing shown, nothing to close
    assert bar._bar is None
    bar.total(4)
    try:
        (task,) = bar._bar.tasks
        assert task.total == 4  # never "0/None"
        bar.step()
        assert task.completed == 1
    finally:
        bar.close()
    assert bar._bar is None
