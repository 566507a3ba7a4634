"""Before a live refresh touches the network: is the provider's SDK installed, are there credentials?

Both are the user's to fix, so both are input errors (one line, exit 2) naming what to run, raised before
any progress bar or request. A network failure after this point is a RefreshError (exit 1).

Where the SDKs look for credentials, and the fixes named here, are the providers' own documentation:
boto3 "Credentials" guide (environment, shared credentials/config file, SSO, container and EC2 instance
roles); google-auth `google.auth.default()` (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default
credentials, the GCE metadata server).
"""
from __future__ import annotations

import importlib.util
from typing import Callable

from pricing.errors import PricingInputError

# provider -> (module that must be installed, its package, the gpuplan extra that installs it)
SDK_EXTRA = {"aws": ("boto3", "boto3", "aws"), "gcp": ("google.cloud.billing_v1", "google-cloud-billing", "gcp")}

AWS_FIX = ("give AWS credentials: run `aws configure` (or `aws sso login`), or set AWS_ACCESS_KEY_ID and "
           "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
GCP_FIX = ("give Google Cloud credentials: run `gcloud auth application-default login`, or set "
           "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file")


def _installed(module: str) -> bool:
    """find_spec, not import: google.cloud.billing_v1 alone takes seconds to import."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing or broken
        return False


def require_sdk(provider: str, installed: Callable[[str], bool] = _installed) -> None:
    """Raise PricingInputError naming the extra to install when the provider's SDK is missing."""
    module, package, extra = SDK_EXTRA[provider]
    if not installed(module):
        raise PricingInputError("--provider", f"refreshing {provider} prices needs {package}, "
                                "which is not installed", f"install it with: pip install 'gpuplan[{extra}]'")


def aws_has_credentials() -> bool:
    """True when boto3's default chain finds credentials (it does not check they are valid)."""
    import boto3

    try:
        return boto3.Session().get_credentials() is not None
    except Exception:  # noqa: BLE001 - a broken profile/config file is "no usable credentials" too
        return False


def gcp_has_credentials() -> bool:
    """True when google-auth's application-default chain finds credentials."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        return False
    except Exception:  # noqa: BLE001 - an unreadable key file is "no usable credentials" too
        return False
    return True


def require_credentials(provider: str, *, anonymous: bool = False,
                        finder: Callable[[str], bool] | None = None) -> None:
    """Raise PricingInputError with the one-line fix when the provider's SDK finds no credentials.

    ``anonymous``: the caller talks to an endpoint that needs none (GCP test/mirror endpoints). AWS always
    signs its requests, so it always needs some (any value does for a local mock)."""
    if anonymous:
        return
    found = finder(provider) if finder else (aws_has_credentials() if provider == "aws" else gcp_has_credentials())
    if not found:
        raise PricingInputError("--provider", f"no {provider.upper()} credentials found",
                                AWS_FIX if provider == "aws" else GCP_FIX)
