"""The limit checks themselves and their settings (the gRPC behaviour is in tests/limits/)."""

from __future__ import annotations

import asyncio

import pytest

from corral import paths
from corral.errors import DeadlineExceeded, InvalidArgument
from services.catalog.config import CatalogConfig
from services.common import metadata_limits
from services.common.config import load
from services.common.limit_settings import ServerLimits, apply_limits
from services.common.limits import RequestGuard
from services.common.metadata_limits import MetadataLimits, checked_json_text, nesting_depth
from services.preprocess.config import PreprocessConfig


@pytest.fixture(autouse=True)
def default_limits():
    yield
    paths.set_path_limits(paths.PathLimits())
    metadata_limits.set_metadata_limits(MetadataLimits())


@pytest.mark.parametrize(("value", "depth"), [
    ({}, 1), ({"a": 1}, 1), ({"a": [1]}, 2), ({"a": [{"b": []}]}, 4),
    ({"a": {"b": 1}, "c": [[[[1]]]]}, 5), (1, 0), ([], 1),
])
def test_nesting_depth(value, depth: int) -> None:
    assert nesting_depth(value) == depth


def test_depth_is_measured_not_guessed_from_brackets() -> None:
    metadata_limits.set_metadata_limits(MetadataLimits(max_depth=2))
    shallow = {"text": "{[{[{[{[" * 10}
    assert checked_json_text(shallow, "m").startswith('{"text"')
    with pytest.raises(InvalidArgument, match=r"m is nested 3 levels deep; the limit is 2 "
                                              r"\(CORRAL_CATALOG_MAX_METADATA_DEPTH\)"):
        checked_json_text({"a": [[1]], "b": "]]]"}, "m")


def test_hostile_depth_is_refused_without_exhausting_the_stack() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidArgument, match="nested 100001 levels deep"):
        checked_json_text({"a": value}, "user_metadata")


def test_size_counts_the_stored_json_text() -> None:
    metadata_limits.set_metadata_limits(MetadataLimits(max_bytes=20))
    assert checked_json_text({"a": "x" * 11}, "m") == '{"a": "xxxxxxxxxxx"}'  # 20 bytes
    with pytest.raises(InvalidArgument, match="m is 21 bytes as JSON, larger than the limit of "
                                              "20 bytes"):
        checked_json_text({"a": "x" * 12}, "m")


def test_paths_count_bytes_and_names_characters() -> None:
    paths.set_path_limits(paths.PathLimits(max_name_length=3, max_path_length=8))
    assert paths.check_name("\u00e9\u00e9\u00e9") == "\u00e9\u00e9\u00e9"
    with pytest.raises(InvalidArgument, match="is 4 characters long; the limit is 3"):
        paths.check_name("abcd")
    assert paths.normalize_dir("/ab/cd") == "/ab/cd"
    with pytest.raises(InvalidArgument, match=r"dir is 10 bytes long; the limit is 8 bytes "
                                              r"\(CORRAL_MAX_PATH_LENGTH\)"):
        paths.normalize_dir("/\u00e9\u00e9/\u00e9\u00e9")


def test_settings_reach_the_checks_and_bad_values_stop_the_service() -> None:
    config = load(CatalogConfig, ["--max-name-length", "10", "--max-metadata-depth", "4",
                                  "--stream-idle-seconds", "5"])
    limits = apply_limits(config)
    assert limits == ServerLimits(stream_idle_seconds=5.0)
    assert paths.path_limits().max_name_length == 10
    assert metadata_limits.metadata_limits().max_depth == 4
    for flag, value, setting in (
            ("--max-metadata-depth", "33", "CORRAL_CATALOG_MAX_METADATA_DEPTH"),
            ("--max-path-length", "2000", "CORRAL_MAX_PATH_LENGTH"),
            ("--max-concurrent-rpcs", "0", "CORRAL_MAX_CONCURRENT_RPCS")):
        with pytest.raises(SystemExit, match=setting):
            apply_limits(load(CatalogConfig, [flag, value]))
    with pytest.raises(SystemExit, match="CORRAL_MAX_MESSAGE_BYTES"):
        apply_limits(load(PreprocessConfig, ["--max-message-bytes", "100"]))


def test_idle_time_counts_only_while_the_handler_waits() -> None:
    async def scenario() -> None:
        async def source():
            yield 1
            yield 2
            await asyncio.sleep(60)

        stream = RequestGuard(0.2)._guarded(source(), "/m")
        assert await anext(stream) == 1
        await asyncio.sleep(0.5)  # busy elsewhere (back-pressure): not the client's idleness
        assert await anext(stream) == 2
        with pytest.raises(DeadlineExceeded, match=r"no message for 0.2 s"):
            await anext(stream)

    asyncio.run(scenario())


def test_a_cancelled_call_is_still_cancelled() -> None:
    async def scenario() -> None:
        async def source():
            await asyncio.sleep(60)
            yield 1

        async def consume() -> None:
            async for _ in RequestGuard(30)._guarded(source(), "/m"):
                pass

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
