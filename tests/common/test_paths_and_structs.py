from __future__ import annotations

import pytest

from corral import paths
from corral.errors import InvalidArgument
from corral.structs import dict_to_struct, parse_json_object, struct_to_dict


@pytest.mark.parametrize("bad", ["", " ", ".", "..", "a/b", "a\\b", "a\x00b", "a\nb", "x" * 256])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="name"):
        paths.check_name(bad)


def test_names_are_nfc_normalized() -> None:
    assert paths.check_name("cafe\u0301.jpg") == "caf\u00e9.jpg"


@pytest.mark.parametrize(("raw", "expected"), [
    ("", "/"), ("/", "/"), ("a", "/a"), ("/a/b/", "/a/b"), ("//a///b", "/a/b"),
])
def test_dirs_are_normalized(raw: str, expected: str) -> None:
    assert paths.normalize_dir(raw) == expected


@pytest.mark.parametrize("bad", ["/a/../b", "..", "/a/./b", "a\\b", "/a\x00", "/" + "x/" * 600])
def test_traversal_dirs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="dir"):
        paths.normalize_dir(bad)


def test_join_split_and_ancestors() -> None:
    assert paths.join("/", "a.jpg") == "/a.jpg"
    assert paths.join("/x/y", "a.jpg") == "/x/y/a.jpg"
    assert paths.split_filename("/x/y/a.jpg") == ("/x/y", "a.jpg")
    assert paths.split_filename("a.jpg") == ("/", "a.jpg")
    assert paths.ancestors("/x/y/z") == ["/x", "/x/y", "/x/y/z"]
    assert paths.ancestors("/") == []
    with pytest.raises(InvalidArgument):
        paths.split_filename("/")


def test_struct_round_trip_keeps_integers() -> None:
    data = {"camera": 3, "ratio": 0.5, "tags": ["a", 1], "nested": {"lot": 12, "ok": True},
            "none": None}
    assert struct_to_dict(dict_to_struct(data)) == data


def test_json_objects_only() -> None:
    assert parse_json_object('{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidArgument, match="metadata is not valid JSON"):
        parse_json_object("{bad")
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        parse_json_object("[1, 2]")
