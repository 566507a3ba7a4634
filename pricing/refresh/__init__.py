"""Live price refresh (`gpuplan prices refresh`): fetch, validate, write the user cache atomically under a lock.

Any failure (network, throttling past the retries, timeouts, malformed answers) raises RefreshError before
anything is written, so the last good catalog stays as it was.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pricing.errors import PricingInputError, RefreshError
from pricing.offer import Offer

# Regions with GPU capacity worth pricing by default (both clouds' GPU region lists, 2025).
DEFAULT_REGIONS = {
    "aws": ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"],
    "gcp": None,  # every region the machine-type listing returns
}


@dataclass
class RefreshResult:
    provider: str
    offers: list[Offer]
    path: Path
    as_of: str
    source: str
    dropped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Progress:
    """A rich progress bar on stderr (or nothing), advanced by the fetchers.

    The bar appears only once its total is known, so a refresh that fails before its first request (no
    credentials, no project) shows none, and a started one never reads "0/None".
    """

    def __init__(self, enabled: bool, description: str) -> None:
        self._enabled = enabled
        self._description = description
        self._bar = None

    def total(self, n: int) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                     console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._description, total=n)
        else:
            self._bar.update(self._task, total=n)

    def step(self, label: str | None = None) -> None:
        if self._bar:
            self._bar.update(self._task, advance=1, **({"description": label} if label else {}))

    def close(self) -> None:
        if self._bar:
            self._bar.stop()
            self._bar = None


# Error codes with which the providers refuse credentials (AWS API error codes for STS/EC2/Price List;
# Google API status names), each the user's to fix rather than a network failure.
REFUSED_CREDENTIALS = {
    "UnrecognizedClientException", "InvalidClientTokenId", "AuthFailure", "ExpiredToken", "ExpiredTokenException",
    "SignatureDoesNotMatch", "AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
    "Unauthenticated", "PermissionDenied", "Forbidden", "Unauthorized",
}


def _refused_credentials(exc: BaseException) -> str | None:
    """The provider's error code when exc says the credentials were refused, else None."""
    code = None
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = (response.get("Error") or {}).get("Code")
    if code is None:
        code = type(exc).__name__  # google.api_core.exceptions.Unauthenticated / PermissionDenied / Forbidden
    if code in REFUSED_CREDENTIALS:
        return str(code)
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return type(exc).__name__
    return None


def refresh(provider: str, *, regions: list[str] | None = None, endpoint_url: str | None = None,
            ec2_endpoint_url: str | None = None, compute_endpoint_url: str | None = None,
            project: str | None = None, timeout: float = 30.0, attempts: int = 5, progress: bool = False,
            cache_directory: Path | None = None, today: _dt.date | None = None,
            _before_replace: Callable[[Path], None] | None = None) -> RefreshResult:
    """Fetch live prices for provider and write `<cache>/<provider>.json` atomically under the cache lock.

    `attempts`: tries per API call (throttling, 5xx and timeouts are retried with exponential backoff)."""
    from pricing.cache import cache_dir, live_file, locked, write_atomic
    from pricing.refresh.preflight import AWS_FIX, GCP_FIX, require_credentials, require_sdk
    from pricing.snapshot import OffersFile, dumps
    from pricing.validate import spread_warnings

    if provider not in ("aws", "gcp"):
        raise PricingInputError("--provider", f"live refresh does not support {provider!r}", "use aws or gcp")
    require_sdk(provider)
    gcp_anonymous = provider == "gcp" and bool(endpoint_url or os.environ.get("GPUPLAN_GCP_BILLING_ENDPOINT"))
    require_credentials(provider, anonymous=gcp_anonymous)
    as_of = (today or _dt.date.today()).isoformat()
    bar = Progress(progress, f"{provider} prices")
    try:
        if provider == "aws":
            from pricing.refresh.aws import fetch_aws

            offers, dropped, source = fetch_aws(
                regions or DEFAULT_REGIONS["aws"], as_of=as_of, timeout=timeout, attempts=attempts, progress=bar,
                pricing_endpoint=endpoint_url or os.environ.get("GPUPLAN_AWS_PRICING_ENDPOINT"),
                ec2_endpoint=ec2_endpoint_url or os.environ.get("GPUPLAN_AWS_EC2_ENDPOINT"))
        elif provider == "gcp":
            from pricing.refresh.gcp import fetch_gcp

            billing = endpoint_url or os.environ.get("GPUPLAN_GCP_BILLING_ENDPOINT")
            offers, dropped, source = fetch_gcp(
                regions, as_of=as_of, timeout=timeout, attempts=attempts, progress=bar, billing_endpoint=billing,
                compute_endpoint=compute_endpoint_url or os.environ.get("GPUPLAN_GCP_COMPUTE_ENDPOINT") or billing,
                project=project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GPUPLAN_GCP_PROJECT"))
        else:
            raise PricingInputError("--provider", f"live refresh does not support {provider!r}", "use aws or gcp")
    except (PricingInputError, RefreshError):
        raise
    except Exception as exc:  # noqa: BLE001 - every client failure becomes one message, nothing written
        code = _refused_credentials(exc)
        if code is not None:
            raise PricingInputError("--provider", f"{provider} refused the credentials ({code})",
                                    AWS_FIX if provider == "aws" else GCP_FIX) from None
        raise RefreshError(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        bar.close()
    if not offers:
        raise RefreshError("the API answered but no GPU offer could be priced")
    warnings = spread_warnings(offers)
    data = OffersFile(offers, {provider: {"source": source, "as_of": as_of}}, [d.to_dict() for d in dropped],
                      warnings, _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())
    directory = cache_directory or cache_dir()
    path = live_file(provider, directory)
    with locked(directory):
        if _before_replace is not None:
            _before_replace(path)
        write_atomic(path, dumps(data))
    return RefreshResult(provider, offers, path, as_of, source, data.dropped, warnings)
