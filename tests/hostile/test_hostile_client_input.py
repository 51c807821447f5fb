"""Non-JSON and hostile JSON where the SDK and the CLI expect JSON: `--metadata TEXT`,
`corral metadata set KEY=VALUE`, filter strings (`--filter metadata.user.k=VALUE`). Parsing
either succeeds or raises a CorralError naming the problem (the CLI prints it and exits 1 or
2), never another exception; what is accepted goes to the real services, which answer
cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.cli.commands.metadata import build_change
from corral.client import Client
from corral.client.filters import parse, parse_value
from corral.errors import CorralError
from corral.structs import dict_to_struct, parse_json_object

from .checks import CLEAN_CODE_NAMES, assert_clean_message
from .conftest import HostileStack, hostile
from .strategies import HOSTILE_CHAR, JSON

pytestmark = pytest.mark.timeout(300)

JSON_TEXTS = st.one_of(
    st.sampled_from([
        "", " ", "{", "}", "{}", "[]", "null", "true", "3", "-0", "1e400", "-1e400", "NaN",
        "Infinity", "-Infinity", '{"a": NaN}', '{"a": Infinity}', "9" * 400, "9" * 5000,
        '{"a": ' + "9" * 400 + "}", "[" * 5000, "{" * 5000, '{"a":' * 3000, "[" * 5000 + "]" * 5000,
        '"\\ud800"', '{"\\udfff": 1}', '{"a": "\\u0000"}', "{'a': 1}", '{"a": 1,}', "\x00",
        '{"a": 1} trailing', "\ufeff{}", '{"deep": ' + '{"a": ' * 25 + "1" + "}" * 25 + "}",
        "[a,b]", "[1, [2, [3]]]", "[,]", "[" + ",".join(["x"] * 2000) + "]", '"quoted"',
        "image/jpeg", "a=b", "a|b", "\u202e", "é", "e\u0301",
    ]),
    st.text(HOSTILE_CHAR, max_size=30),
    JSON.map(lambda value: json.dumps(value, allow_nan=True)),
)


def _clean(error: CorralError, *inputs: Any) -> None:
    assert error.code in CLEAN_CODE_NAMES, f"{error.code}: {error.message[:300]}"
    assert_clean_message(error.message, inputs)


@given(text=JSON_TEXTS, key=st.sampled_from(["k", "a.b", "x" * 100, "", ".", "a..b", "é"]))
@hostile(max_examples=300)
def test_cli_json_arguments_parse_or_refuse(text: str, key: str) -> None:
    """No server: the parsing the CLI does before any call."""
    try:
        parsed = parse_json_object(text)
    except CorralError as error:
        _clean(error, text)
    else:
        try:
            dict_to_struct(parsed)
        except CorralError as error:
            _clean(error, text)
    value = parse_value(text)
    try:
        change = build_change([f"{key}={text}"], [], False)
        dict_to_struct(change)
    except CorralError as error:
        _clean(error, text, key)
    del value
    try:
        parse(f"metadata.user.{key}={text}").to_proto()
    except CorralError as error:
        _clean(error, text, key)


@pytest.fixture(scope="module")
def hostile_client(hostile_stack: HostileStack) -> Iterator[Client]:
    with Client(**hostile_stack.running.client_kwargs()) as client:
        yield client


@pytest.fixture(scope="module")
def item_id(hostile_stack: HostileStack, hostile_client: Client) -> str:
    dataset = hostile_stack.new_dataset("client")
    item = hostile_client.upload_bytes(b"hello", dataset, "target.txt")
    return item.item["id"]


@given(text=JSON_TEXTS, replace=st.booleans())
@hostile(max_examples=60)
def test_sdk_metadata_values_through_the_services(hostile_client: Client, item_id: str,
                                                  text: str, replace: bool) -> None:
    """`corral metadata set ITEM k=TEXT` as the SDK call it makes."""
    before = hostile_client.get_item(item_id)
    try:
        change = build_change([f"k={text}"], [], replace)
        key = "user_metadata" if replace else "metadata_patch"
        updated = hostile_client.update_item(item_id, **{key: change})
    except CorralError as error:
        _clean(error, text)
        after = hostile_client.get_item(item_id)
        assert after["metadata"]["user"] == before["metadata"]["user"]
    else:
        assert hostile_client.get_item(item_id) == updated


@given(text=st.sampled_from(["[" * 5000, "NaN", "1e400", '{"a": "\\ud800"}', "9" * 5000,
                             '{"deep": ' + '{"a": ' * 25 + "1" + "}" * 25 + "}", "{'a': 1}"]),
       command=st.sampled_from(["metadata", "upload", "filter"]))
@hostile(max_examples=10)
def test_cli_commands_with_hostile_json(hostile_stack: HostileStack, item_id: str,
                                        tmp_path_factory: pytest.TempPathFactory, text: str,
                                        command: str) -> None:
    """The real `corral` command: an error line and exit status 1 or 2, never a traceback."""
    work: Path = tmp_path_factory.mktemp("cli")
    (work / "f.txt").write_bytes(b"x")
    args = {"metadata": ["metadata", "set", item_id, f"k={text}"],
            "upload": ["upload", str(work / "f.txt"), "--dataset", "nope",
                       "--metadata", text],
            "filter": ["ls", "nope", "--filter", f"metadata.user.k={text}"]}[command]
    done = subprocess.run([sys.executable, "-m", "corral.cli.main", *args],
                          env=hostile_stack.running.env, cwd=work, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode in (0, 1, 2), (done.returncode, done.stderr[-2000:])
