"""Which uploaded bytes are link files, and how malformed ones are refused."""

from __future__ import annotations

import json

import pytest

from corral.errors import InvalidArgument
from services.upload.links import MAX_LINK_FILE_BYTES, LinkTarget, parse_link_file


def link_file(**overrides) -> bytes:
    data = {"type": "link", "shebang": "dataloop",
            "metadata": {"dltype": "link", "linkInfo": {
                "type": "url", "ref": "https://example.com/a.jpg", "mimetype": "image/jpeg"}}}
    data.update(overrides)
    return json.dumps(data).encode()


def test_dataloop_and_corral_link_files() -> None:
    assert parse_link_file(link_file()) == LinkTarget("https://example.com/a.jpg", "image/jpeg")
    assert parse_link_file(b"  \n" + link_file(shebang="corral")) is not None
    no_type = link_file(metadata={"dltype": "link", "linkInfo": {
        "type": "url", "ref": "https://example.com/v"}})
    assert parse_link_file(no_type) == LinkTarget("https://example.com/v", "")


@pytest.mark.parametrize("content", [
    b"", b"[]", b"not json", b"\xff\xfe{", b'{"type": "link"}',
    b'{"type": "link", "shebang": "other"}', b'{"type": "file", "shebang": "dataloop"}',
    b"{" + b" " * MAX_LINK_FILE_BYTES + b"}",
])
def test_other_content_is_an_ordinary_file(content: bytes) -> None:
    assert parse_link_file(content) is None


@pytest.mark.parametrize(("overrides", "field"), [
    ({"metadata": {"dltype": "file"}}, "metadata.dltype"),
    ({"metadata": {"dltype": "link", "linkInfo": {"type": "s3", "ref": "x"}}},
     "metadata.linkInfo.type"),
    ({"metadata": {"dltype": "link", "linkInfo": {"type": "url"}}}, "metadata.linkInfo.ref"),
    ({"metadata": {"dltype": "link", "linkInfo": {"type": "url", "ref": "u", "mimetype": 3}}},
     "metadata.linkInfo.mimetype"),
])
def test_a_declared_link_file_that_is_malformed_is_refused(overrides, field) -> None:
    with pytest.raises(InvalidArgument, match=field):
        parse_link_file(link_file(**overrides))
