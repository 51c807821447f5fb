"""Keys, roles and projects on the upload and preprocess services, over the real three
services: every UploadService RPC and PreprocessService.GetStats refuses a missing, malformed,
unknown or revoked key (UNAUTHENTICATED), a reader's writes (PERMISSION_DENIED) and another
project's dataset, item or session (NOT_FOUND, leaving no blob); the key is checked before
the first stream message is read; keys never reach a log or an error message.

Tests using `target` (project alpha's data) and the concurrent bulk test need the catalog to
scope datasets and items to the caller's project (a dataset created with a project's key
belongs to that project); those using `default_target` are refused by the key check alone."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sdk.stack import Stack
from upload.messages import bulk_file_messages

from corral.client import Client, ResumePolicy
from corral.errors import NotFound, Unauthenticated
from corral.preprocess.v1 import preprocess_service_pb2 as preprocess_pb2
from corral.upload.v1 import upload_service_pb2 as upload_pb2
from security.helpers import (
    Keys,
    Stubs,
    Target,
    client_for,
    service_logs,
    stored_blobs,
    stubs_for,
)

TIMEOUT = 30  # a call that would hang fails as DEADLINE_EXCEEDED instead of blocking
OK, UNAUTHENTICATED = grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED, NOT_FOUND = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND
CSV = b"ID,image_bytes\nrow1,aGVsbG8=\n"


class ItemFailed(grpc.RpcError):
    """A per-file or per-row error of a stream that itself succeeded, read like a status."""

    def __init__(self, code: str, message: str) -> None:
        self._code, self._message = grpc.StatusCode[code], message

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message


def _spec(target: Target, name: str) -> upload_pb2.UploadSpec:
    return upload_pb2.UploadSpec(dataset_id=target.dataset_id, name=name)


def call_upload_item(stubs: Stubs, target: Target) -> None:
    stubs.upload.UploadItem(iter([upload_pb2.UploadItemRequest(
        spec=_spec(target, f"one-{uuid.uuid4().hex[:6]}.bin"), data=b"x", finish_write=True)]),
        timeout=TIMEOUT)


def call_resume_session(stubs: Stubs, target: Target) -> None:
    """Writes one byte into alpha's open session without finishing it."""
    stubs.upload.UploadItem(iter([upload_pb2.UploadItemRequest(
        upload_id=target.upload_id, write_offset=0, data=b"y")]), timeout=TIMEOUT)


def call_upload_items(stubs: Stubs, target: Target) -> None:
    messages = bulk_file_messages(0, _spec(target, f"bulk-{uuid.uuid4().hex[:6]}.bin"), b"z")
    for reply in stubs.upload.UploadItems(iter(messages), timeout=TIMEOUT):
        for result in reply.results:
            if result.HasField("error"):
                raise ItemFailed(result.error.code, result.error.message)


def call_start_resumable(stubs: Stubs, target: Target) -> None:
    stubs.upload.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
        spec=_spec(target, f"started-{uuid.uuid4().hex[:6]}.bin")), timeout=TIMEOUT)


def call_query(stubs: Stubs, target: Target) -> None:
    stubs.upload.QueryUploadStatus(
        upload_pb2.QueryUploadStatusRequest(upload_id=target.upload_id), timeout=TIMEOUT)


def call_cancel(stubs: Stubs, target: Target) -> None:
    stubs.upload.CancelResumableUpload(
        upload_pb2.CancelResumableUploadRequest(upload_id=target.upload_id), timeout=TIMEOUT)


def call_download(stubs: Stubs, target: Target) -> None:
    list(stubs.upload.Download(upload_pb2.DownloadRequest(item_id=target.item_id),
                               timeout=TIMEOUT))


def call_import_csv(stubs: Stubs, target: Target) -> None:
    spec = upload_pb2.ImportCsvSpec(dataset_id=target.dataset_id,
                                    csv_name=f"import-{uuid.uuid4().hex[:6]}.csv")
    for reply in stubs.upload.ImportCsv(iter([upload_pb2.ImportCsvRequest(spec=spec, data=CSV)]),
                                        timeout=TIMEOUT):
        if reply.HasField("row") and reply.row.HasField("error"):
            raise ItemFailed(reply.row.error.code, reply.row.error.message)


def call_get_stats(stubs: Stubs, target: Target) -> None:
    stubs.preprocess.GetStats(preprocess_pb2.GetStatsRequest(), timeout=TIMEOUT)


Call = Callable[[Stubs, Target], None]
# Name -> (call, whether it writes). Calls that would change alpha's shared target (cancel,
# resume) are only ever expected to be refused.
RPCS: dict[str, tuple[Call, bool]] = {
    "UploadItem": (call_upload_item, True),
    "UploadItem(upload_id)": (call_resume_session, True),
    "UploadItems": (call_upload_items, True),
    "StartResumableUpload": (call_start_resumable, True),
    "QueryUploadStatus": (call_query, False),
    "CancelResumableUpload": (call_cancel, True),
    "Download": (call_download, False),
    "ImportCsv": (call_import_csv, True),
    "GetStats": (call_get_stats, False),
}
WRITES = [name for name, (_, writes) in RPCS.items() if writes]
READS = [name for name, (_, writes) in RPCS.items() if not writes]


def secret_of(key: str) -> str:
    """The part after "corral_<key id>_" (the whole text for made-up keys)."""
    return key.split("_", 2)[-1]


def outcome(call: Call, stubs: Stubs, target: Target, keys: Keys) -> tuple[grpc.StatusCode,
                                                                            str]:
    """The call's status code and message; no key may appear in the message."""
    try:
        call(stubs, target)
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    else:
        return OK, ""
    for key in keys.all():
        assert key not in details and secret_of(key) not in details
    return code, details


def outcomes(stubs: Stubs, target: Target, keys: Keys, names: list[str] | None = None,
             ) -> dict[str, grpc.StatusCode]:
    return {name: outcome(RPCS[name][0], stubs, target, keys)[0]
            for name in (names if names is not None else list(RPCS))}


def every(code: grpc.StatusCode, names: list[str] | None = None) -> dict[str, grpc.StatusCode]:
    return dict.fromkeys(names if names is not None else list(RPCS), code)


def unknown_key() -> str:
    return f"corral_{uuid.uuid4().hex[:16]}_{'A' * 43}"


def test_no_key_is_unauthenticated(stack: Stack, default_target: Target, keys: Keys) -> None:
    target = default_target
    before = stored_blobs(stack)
    with stubs_for(stack) as stubs:
        assert outcomes(stubs, target, keys) == every(UNAUTHENTICATED)
        _, message = outcome(call_upload_item, stubs, target, keys)
    assert "missing API key" in message
    assert stored_blobs(stack) == before


def test_malformed_and_unknown_keys_are_unauthenticated(
        stack: Stack, default_target: Target, keys: Keys, projects: tuple[str, str]) -> None:
    target = default_target
    alpha_reader_id = keys.ids[keys.of(projects[0], "reader")]
    presented = ["not-a-key", unknown_key(),
                 # A real key id with a wrong secret.
                 f"corral_{alpha_reader_id}_{'B' * 43}"]
    keys.presented += presented
    before = stored_blobs(stack)
    for key in presented:
        with stubs_for(stack, key) as stubs:
            assert outcomes(stubs, target, keys) == every(UNAUTHENTICATED), key
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", keys.of(projects[0], "admin")):
        # Wrong schemes, an empty bearer, and a real key without "Bearer".
        with stubs_for(stack, metadata=(("authorization", header),)) as stubs:
            assert outcomes(stubs, target, keys) == every(UNAUTHENTICATED), header
    assert stored_blobs(stack) == before


def test_reader_may_not_write(stack: Stack, default_target: Target, keys: Keys,
                              projects: tuple[str, str]) -> None:
    before = stored_blobs(stack)
    with stubs_for(stack, keys.of(projects[0], "reader")) as stubs:
        assert outcomes(stubs, default_target, keys, WRITES) == every(PERMISSION_DENIED,
                                                                      WRITES)
        _, message = outcome(call_upload_item, stubs, default_target, keys)
    assert "needs the writer role" in message
    assert stored_blobs(stack) == before


def test_reader_reads_its_project(stack: Stack, target: Target, keys: Keys) -> None:
    with stubs_for(stack, keys.of(target.project, "reader")) as stubs:
        assert outcomes(stubs, target, keys, READS) == every(OK, READS)


def test_another_projects_keys_find_nothing(stack: Stack, target: Target, keys: Keys,
                                            projects: tuple[str, str]) -> None:
    beta = projects[1]
    before = stored_blobs(stack)
    for role in ("writer", "admin"):
        with stubs_for(stack, keys.of(beta, role)) as stubs:
            expected = {**every(NOT_FOUND), "GetStats": OK}  # stats are not per project
            assert outcomes(stubs, target, keys) == expected, role
    with stubs_for(stack, keys.of(beta, "reader")) as stubs:
        assert outcomes(stubs, target, keys, ["QueryUploadStatus", "Download"]) == every(
            NOT_FOUND, ["QueryUploadStatus", "Download"])
    # A project-bound key naming another project in the project header.
    with stubs_for(stack, keys.of(beta, "admin"), project=target.project) as stubs:
        assert outcomes(stubs, target, keys) == every(NOT_FOUND)
    # Refused before any byte was stored; alpha's session and item are untouched.
    assert stored_blobs(stack) == before
    with stubs_for(stack, keys.of(target.project, "reader")) as stubs:
        status = stubs.upload.QueryUploadStatus(
            upload_pb2.QueryUploadStatusRequest(upload_id=target.upload_id), timeout=TIMEOUT)
        assert status.persisted_size == 0
        data = b"".join(reply.data for reply in stubs.upload.Download(
            upload_pb2.DownloadRequest(item_id=target.item_id), timeout=TIMEOUT))
        assert data == target.item_content


def test_not_found_reads_like_a_missing_session(stack: Stack, target: Target,
                                                keys: Keys, projects: tuple[str, str]) -> None:
    missing = Target(**{**target.__dict__, "upload_id": uuid.uuid4().hex,
                        "item_id": uuid.uuid4().hex})
    with stubs_for(stack, keys.of(projects[1], "writer")) as stubs:
        for call in (call_query, call_cancel, call_download):
            theirs = outcome(call, stubs, target, keys)[1]
            absent = outcome(call, stubs, missing, keys)[1]
            # The same words, only the id differs: the key learns nothing from the message.
            assert theirs.replace(target.upload_id, "ID").replace(target.item_id, "ID") == \
                absent.replace(missing.upload_id, "ID").replace(missing.item_id, "ID")


def _blocked(release: threading.Event, first: object | None = None) -> Iterator[object]:
    """A request stream that sends `first` (if any), then waits until released."""
    if first is not None:
        yield first
    release.wait()


def test_key_is_checked_before_the_first_message(stack: Stack, default_target: Target,
                                                 keys: Keys, projects: tuple[str, str]) -> None:
    """Client streams whose next message never comes still get their answer: the server
    decided without reading (or waiting for) a message. Nothing is stored."""
    target = default_target
    spec = _spec(target, "never.bin")
    firsts = {
        "UploadItem": upload_pb2.UploadItemRequest(spec=spec, data=b"d" * 1000),
        "UploadItems": bulk_file_messages(0, spec, b"d" * 1000, finish=False)[0],
        "ImportCsv": upload_pb2.ImportCsvRequest(spec=upload_pb2.ImportCsvSpec(
            dataset_id=target.dataset_id, csv_name="never.csv"), data=CSV),
    }
    cases = [("", UNAUTHENTICATED), (unknown_key(), UNAUTHENTICATED),
             (keys.of(projects[0], "reader"), PERMISSION_DENIED)]
    keys.presented.append(cases[1][0])
    before = stored_blobs(stack)
    release = threading.Event()
    try:
        for key, expected in cases:
            with stubs_for(stack, key) as stubs:
                calls = {
                    "UploadItem": lambda it, s=stubs: s.upload.UploadItem(it, timeout=TIMEOUT),
                    "UploadItems": lambda it, s=stubs: list(s.upload.UploadItems(
                        it, timeout=TIMEOUT)),
                    "ImportCsv": lambda it, s=stubs: list(s.upload.ImportCsv(
                        it, timeout=TIMEOUT)),
                }
                for name, call in calls.items():
                    for first in (None, firsts[name]):
                        with pytest.raises(grpc.RpcError) as caught:
                            call(_blocked(release, first))
                        assert caught.value.code() == expected, (name, key[:6], first)
    finally:
        release.set()
    assert stored_blobs(stack) == before


def test_upload_into_another_projects_dataset_ends_at_its_first_message(
        stack: Stack, target: Target, keys: Keys, projects: tuple[str, str]) -> None:
    """The dataset lookup answers NOT_FOUND for the spec, before any byte is stored and
    while the stream is still open, even just after alpha's own upload was looked up (the
    upload service caches dataset lookups per project)."""
    with stubs_for(stack, keys.of(target.project, "writer")) as alpha:
        call_upload_item(alpha, target)  # alpha's lookup of its dataset is now cached
    spec = _spec(target, "intruder.bin")
    before = stored_blobs(stack)
    release = threading.Event()
    try:
        with stubs_for(stack, keys.of(projects[1], "writer")) as beta:
            with pytest.raises(grpc.RpcError) as caught:
                beta.upload.UploadItem(_blocked(release, upload_pb2.UploadItemRequest(
                    spec=spec, data=b"d" * 1000)), timeout=TIMEOUT)
            assert caught.value.code() == NOT_FOUND
            responses = beta.upload.UploadItems(
                _blocked(release, bulk_file_messages(0, spec, b"d" * 1000, finish=False)[0]),
                timeout=TIMEOUT)
            first = next(responses)
            assert [r.error.code for r in first.results] == ["NOT_FOUND"]
            responses.cancel()
            with pytest.raises(grpc.RpcError) as caught:
                list(beta.upload.ImportCsv(_blocked(release, upload_pb2.ImportCsvRequest(
                    spec=upload_pb2.ImportCsvSpec(dataset_id=target.dataset_id,
                                                  csv_name="intruder.csv"), data=CSV)),
                    timeout=TIMEOUT))
            assert caught.value.code() == NOT_FOUND
            assert stored_blobs(stack) == before  # checked while the streams are open
    finally:
        release.set()


def test_concurrent_bulk_uploads_of_two_projects(stack: Stack, keys: Keys,
                                                 projects: tuple[str, str],
                                                 tmp_path: Path) -> None:
    """The upload service batches the catalog registrations of all bulk streams together:
    a batch must never carry one project's files under another project's name."""
    results: dict[str, object] = {}

    def upload(project: str) -> None:
        folder = tmp_path / project / "many"
        folder.mkdir(parents=True)
        for index in range(60):
            (folder / f"{index}.txt").write_bytes(f"{project} {index}".encode())
        try:
            with client_for(stack, keys.of(project, "writer")) as writer:
                dataset = writer.create_dataset(f"bulk-{uuid.uuid4().hex[:6]}")
                summary = writer.upload_paths([folder], dataset, workers=4)
                results[project] = (len(summary.created), [f.code for f in summary.failures],
                                    writer.get_dataset(dataset["id"])["item_count"])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[project] = exc

    threads = [threading.Thread(target=upload, args=(project,)) for project in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {project: (60, [], 60) for project in projects}


def _eventually_refused(stubs: Stubs, target: Target, keys: Keys) -> None:
    """Polls until the upload and preprocess services stop accepting the key (each has its
    own cache of the catalog's answers)."""
    deadline = threading.Event()
    timer = threading.Timer(60, deadline.set)
    timer.start()
    try:
        while OK in (outcome(call_query, stubs, target, keys)[0],
                     outcome(call_get_stats, stubs, target, keys)[0]):
            assert not deadline.wait(0.1), "the revoked key still works after 60 s"
    finally:
        timer.cancel()


def test_revoked_key_is_refused_once_the_cache_expires(stack: Stack, target: Target,
                                                       keys: Keys, client: Client) -> None:
    record, key = client.create_api_key(target.project, "writer", description="to revoke")
    keys.presented.append(key)
    with stubs_for(stack, key) as stubs:
        assert outcomes(stubs, target, keys, READS) == every(OK, READS)
        client.revoke_api_key(record["key_id"])
        with client_for(stack, key) as revoked, pytest.raises(Unauthenticated):
            revoked.whoami()  # the catalog refuses it at once
        _eventually_refused(stubs, target, keys)
        before = stored_blobs(stack)
        assert outcomes(stubs, target, keys) == every(UNAUTHENTICATED)
        _, message = outcome(call_upload_item, stubs, target, keys)
    assert "invalid or revoked API key" in message
    assert stored_blobs(stack) == before
    listed = {k["key_id"]: k for k in client.list_api_keys(target.project, include_revoked=True)}
    assert listed[record["key_id"]]["revoked"]


def test_alphas_writer_uploads_and_downloads(stack: Stack, target: Target, keys: Keys,
                                             projects: tuple[str, str], tmp_path: Path,
                                             client: Client) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for index in range(4):
        (files / f"f{index}.txt").write_bytes(f"file {index}".encode())
    with client_for(stack, keys.of(target.project, "writer"),
                    resume_policy=ResumePolicy(threshold=1000)) as writer:
        assert writer.whoami() == {"key_id": keys.ids[keys.of(target.project, "writer")],
                                   "project": target.project, "role": "writer",
                                   "instance_wide": False, "service": False}
        one = writer.upload_bytes(b"written by alpha", target.dataset_id, "mine.txt").item
        assert writer.download_bytes(one["id"]) == b"written by alpha"
        big = bytes(range(256)) * 20  # above the threshold: a resumable session
        session_item = writer.upload_bytes(big, target.dataset_id, "big.bin").item
        assert writer.download_bytes(session_item["id"]) == big
        summary = writer.upload_paths([files], target.dataset_id, remote_dir="/bulk")
        assert len(summary.created) == 4 and not summary.failures
        report = writer.import_csv(io.BytesIO(CSV), target.dataset_id, csv_name="rows.csv")
        assert (report.created, report.failed) == (1, 0)
        names = {item["filename"] for item in writer.list_items(target.dataset_id,
                                                                recursive=True)}
        assert {"/mine.txt", "/big.bin", "/bulk/files/f0.txt", "/rows/row1"} <= names
    with stubs_for(stack, keys.of(target.project, "writer")) as stubs:
        started = stubs.upload.StartResumableUpload(upload_pb2.StartResumableUploadRequest(
            spec=_spec(target, "cancelled.bin")), timeout=TIMEOUT)
        stubs.upload.CancelResumableUpload(upload_pb2.CancelResumableUploadRequest(
            upload_id=started.upload_id), timeout=TIMEOUT)
    # The instance admin of the test session sees every project.
    assert client.download_bytes(one["id"]) == b"written by alpha"
    with client_for(stack, keys.of(projects[1], "writer")) as other, pytest.raises(NotFound):
        other.download_bytes(one["id"])


def test_zz_keys_never_appear_in_logs(stack: Stack, keys: Keys) -> None:
    """Runs last in the module: every key presented above, valid or not."""
    logs = service_logs(stack)
    assert all(logs.values())
    for name, text in logs.items():
        assert "Bearer" not in text, name
        for key in keys.all():
            assert key not in text, (name, key[:14])
            assert secret_of(key) not in text, (name, key[:14])
