from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sdk.stack import Stack

CliRunner = Callable[..., subprocess.CompletedProcess[str]]




@pytest.fixture
def corral(stack: Stack, tmp_path: Path) -> CliRunner:
    """Runs `corral ARGS...` in a subprocess against the test stack, in tmp_path."""

    def run(*args: str, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`env` adds to (or overrides) the stack's environment, e.g. another CORRAL_API_KEY."""
        return subprocess.run([sys.executable, "-m", "corral.cli.main", *args],
                              env={**stack.env, **(env or {})}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=timeout)

    return run
