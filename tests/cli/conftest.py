from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sdk.stack import Stack, running_stack

from corral.client import Client

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Client]:
    with Client(**stack.client_kwargs()) as sdk_client:
        yield sdk_client


@pytest.fixture
def corral(stack: Stack, tmp_path: Path) -> CliRunner:
    """Runs `corral ARGS...` in a subprocess against the test stack, in tmp_path."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=stack.env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    return run
