"""A stack whose services forget key checks quickly (revocation tests) and log at debug level
(the log scan then sees everything), two projects with a key of every role each, and the
data each test attacks: project alpha's dataset, item and resumable session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import testkeys
from sdk.stack import Stack, running_stack

from corral.client import Client
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from security.helpers import ROLES, Keys, Target, client_for, stubs_for

# Short, so that a revoked key stops working on the upload and preprocess services soon.
AUTH_CACHE_SECONDS = "0.5"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"CORRAL_AUTH_CACHE_SECONDS": AUTH_CACHE_SECONDS, "CORRAL_LOG_LEVEL": "debug"}
    with running_stack(tmp_path_factory.mktemp("secure-stack"), env) as running:
        yield running


@pytest.fixture(scope="module")
def projects(client: Client) -> tuple[str, str]:
    """(alpha, beta), created by the instance admin key of the test session."""
    suffix = uuid.uuid4().hex[:8]
    alpha, beta = f"alpha-{suffix}", f"beta-{suffix}"
    for name in (alpha, beta):
        client.create_project(name, description="security tests")
    return alpha, beta


@pytest.fixture(scope="module")
def keys(client: Client, projects: tuple[str, str]) -> Keys:
    made = Keys()
    for project in projects:
        made.by_project[project] = {}
        for role in ROLES:
            record, key = client.create_api_key(project, role, description=f"test {role}")
            made.by_project[project][role] = key
            made.ids[key] = record["key_id"]
    return made


@pytest.fixture(scope="module")
def target(stack: Stack, keys: Keys, projects: tuple[str, str]) -> Target:
    alpha = projects[0]
    content = b"alpha's secret content"
    with client_for(stack, keys.of(alpha, "writer")) as writer:
        dataset = writer.create_dataset("alpha-data")
        assert dataset["project"] == alpha
        item = writer.upload_bytes(content, dataset, "secret.txt").item
    assert item is not None
    with stubs_for(stack, keys.of(alpha, "writer")) as stubs:
        started = stubs.upload.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
            spec=upload_pb2.UploadSpec(dataset_id=dataset["id"], name="session.bin")),
            timeout=30)
    return Target(project=alpha, dataset_id=dataset["id"], item_id=item["id"],
                  item_content=content, upload_id=started.upload_id)


@pytest.fixture(scope="module")
def default_target(stack: Stack, client: Client) -> Target:
    """Data of the default project, made by the instance admin key: for tests refused by the
    key check alone, which must not depend on project scoping."""
    content = b"default project content"
    dataset = client.create_dataset(f"default-{uuid.uuid4().hex[:8]}")
    item = client.upload_bytes(content, dataset, "file.txt").item
    assert item is not None
    with stubs_for(stack, testkeys.ADMIN_KEY) as stubs:
        started = stubs.upload.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
            spec=upload_pb2.UploadSpec(dataset_id=dataset["id"], name="session.bin")),
            timeout=30)
    return Target(project=dataset["project"], dataset_id=dataset["id"], item_id=item["id"],
                  item_content=content, upload_id=started.upload_id)
