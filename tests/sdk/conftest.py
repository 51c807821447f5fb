from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.client import Client
from sdk.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Client]:
    with Client(**stack.client_kwargs()) as sdk_client:
        yield sdk_client
