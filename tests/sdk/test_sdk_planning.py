"""Client-side logic that needs no server: folder expansion, response checks, conversion."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from corral.catalog.v1 import resources_pb2
from corral.client import plan_uploads
from corral.client.convert import item_to_dict
from corral.client.uploads import StreamState, result_from_response, upload_requests
from corral.client.wire import ChunkRequest, encode_request
from corral.errors import DataLoss, InvalidArgument
from corral.structs import dict_to_struct
from corral.upload.v1 import upload_service_pb2
from sdk.images import PHOTO_FILENAMES, make_photo_tree


def test_a_folder_keeps_its_own_name_under_the_remote_dir(tmp_path: Path) -> None:
    photos = make_photo_tree(tmp_path)
    planned, failures = plan_uploads([photos], "/in")
    assert failures == []
    assert sorted(p.filename for p in planned) == [f"/in/photos/{f}" for f in PHOTO_FILENAMES]
    assert {p.size for p in planned if p.name == "a.jpg"} == {(photos / "a.jpg").stat().st_size}


def test_files_go_directly_into_the_remote_dir(tmp_path: Path) -> None:
    photos = make_photo_tree(tmp_path)
    planned, _ = plan_uploads([photos / "a.jpg", photos / "cats" / "c.jpg"])
    assert [p.filename for p in planned] == ["/a.jpg", "/c.jpg"]


def test_bad_paths_become_failures_and_the_rest_is_planned(tmp_path: Path) -> None:
    photos = make_photo_tree(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.jpg").write_bytes(b"same remote name")
    planned, failures = plan_uploads(
        [photos / "a.jpg", tmp_path / "missing.jpg", tmp_path / "other" / "a.jpg"], "/")
    assert [p.filename for p in planned] == ["/a.jpg"]
    reasons = {f.local_path: f.reason for f in failures}
    assert "no such file" in reasons[str(tmp_path / "missing.jpg")]
    assert "also uploaded to /a.jpg" in reasons[str(tmp_path / "other" / "a.jpg")]


def test_an_invalid_remote_dir_is_refused_before_anything_happens(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        plan_uploads([tmp_path], "/a/../b")


def _sent(data: bytes, chunk_size: int) -> tuple[list[upload_service_pb2.UploadItemRequest],
                                                  StreamState]:
    spec = upload_service_pb2.UploadSpec(dataset_id="d" * 32, name="x.bin")
    state = StreamState()
    sent = upload_requests(spec, io.BytesIO(data), chunk_size, state)
    return [request.to_message() for request in sent], state  # decoded from the wire bytes


def test_requests_encode_to_the_same_message_as_protobuf() -> None:
    spec = upload_service_pb2.UploadSpec(dataset_id="d" * 32, name="x.bin", size=300_000)
    for data, offset, finish, first in ((b"", 0, True, True), (b"x" * 127, 5, False, False),
                                        (os.urandom(300_000), 2**40, True, True)):
        request = ChunkRequest(write_offset=offset, data=data, finish_write=finish,
                               spec=spec if first else None)
        expected = upload_service_pb2.UploadItemRequest(
            write_offset=offset, data=data, finish_write=finish, spec=spec if first else None)
        assert upload_service_pb2.UploadItemRequest.FromString(
            encode_request(request)) == expected


def test_the_request_stream_carries_offsets_spec_first_and_finish_last() -> None:
    requests, state = _sent(b"0123456789", 4)
    assert [r.write_offset for r in requests] == [0, 4, 8]
    assert [r.data for r in requests] == [b"0123", b"4567", b"89"]
    assert [r.HasField("spec") for r in requests] == [True, False, False]
    assert [r.finish_write for r in requests] == [False, False, True]
    assert state.finished and state.sent == 10
    assert state.hasher.hexdigest() == hashlib.sha256(b"0123456789").hexdigest()


def test_an_empty_upload_is_one_finishing_message() -> None:
    requests, state = _sent(b"", 4)
    assert len(requests) == 1 and requests[0].finish_write and requests[0].HasField("spec")
    assert state.finished


def _response(sha256: str, size: int, outcome: int) -> upload_service_pb2.UploadItemResponse:
    item = resources_pb2.Item(id="a" * 32, filename="/x.bin", name="x.bin", dir="/",
                              sha256=sha256, size=size, type=resources_pb2.ITEM_TYPE_FILE)
    return upload_service_pb2.UploadItemResponse(item=item, outcome=outcome)


def test_a_stored_digest_that_differs_from_the_sent_one_is_data_loss() -> None:
    _, state = _sent(b"payload", 3)
    with pytest.raises(DataLoss):
        result_from_response(_response("0" * 64, 7, resources_pb2.CREATE_OUTCOME_CREATED),
                             state, None)
    good = hashlib.sha256(b"payload").hexdigest()
    result = result_from_response(_response(good, 7, resources_pb2.CREATE_OUTCOME_CREATED),
                                  state, "local")
    assert result.outcome == "created" and result.local_path == "local"


def test_a_skipped_upload_may_keep_different_content() -> None:
    _, state = _sent(b"new content", 4)
    result = result_from_response(_response("f" * 64, 3, resources_pb2.CREATE_OUTCOME_SKIPPED),
                                  state, None)
    assert result.outcome == "skipped"


def test_items_become_plain_json_ready_dicts() -> None:
    item = resources_pb2.Item(id="a" * 32, type=resources_pb2.ITEM_TYPE_DIR, name="cats")
    item.metadata.user.CopyFrom(dict_to_struct({"camera": 3, "score": 0.5}))
    item.create_time.FromSeconds(1_700_000_000)
    converted = item_to_dict(item)
    assert converted["type"] == "dir"
    assert converted["metadata"] == {"system": {}, "user": {"camera": 3, "score": 0.5}}
    assert converted["create_time"] == "2023-11-14T22:13:20+00:00"
    assert converted["update_time"] is None
