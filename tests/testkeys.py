"""API keys of the test session. tests/conftest.py puts them into the environment at import,
so every service a test starts registers the admin key (CORRAL_BOOTSTRAP_ADMIN_KEY) and
shares the service key, and every client (SDK, CLI subprocess, fixtures' channels) sends the
admin key (CORRAL_API_KEY). Tests of keys and roles make their own keys through AdminService."""

from __future__ import annotations

import os
import tempfile

from corral.credentials import new_api_key

ADMIN_KEY = new_api_key()[1]
SERVICE_KEY = new_api_key()[1]

ENV = {
    "CORRAL_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
    "CORRAL_SERVICE_KEY": SERVICE_KEY,
    "CORRAL_API_KEY": ADMIN_KEY,
    # `corral up` notes its key file under the config home: keep the real one untouched.
    "XDG_CONFIG_HOME": tempfile.mkdtemp(prefix="corral-test-config-"),
}


def install() -> None:
    os.environ.update(ENV)
