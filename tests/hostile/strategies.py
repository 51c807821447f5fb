"""Generators of hostile input: names and paths, JSON metadata, filter trees, CSV files and
link files. Protobuf messages are built in place (never through constructors that copy), so
values the Python API would refuse to copy, such as NaN or nesting past protobuf's limit, still
reach the wire."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from google.protobuf import struct_pb2
from hypothesis import strategies as st

from corral.catalog.v1 import filters_pb2

# Characters of every kind a name can hold, controls, format (bidi, zero-width) and combining
# marks included. No surrogates: a Python str holding one cannot be encoded as protobuf UTF-8
# (the raw-bytes tests send invalid UTF-8 instead).
HOSTILE_CHAR = st.one_of(
    st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"]),
    st.sampled_from(list("/\\.\x00\x1b\x7f\x85 \t\n\r\u00a0\u202e\u202d\u2066\u2069\u200b"
                         "\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u0301\u00e9\U0010ffff")),
)
SPECIAL_NAMES = [
    "", " ", "  ", ".", "..", "...", ". .", "../../etc/passwd", "..\\..\\boot.ini", "/./",
    "//", "a/b", "a\\b", "\x00", "a\x00b", "\x7f", "\x85x", "\x1b[31mred", "tab\tname",
    "new\nline", "cr\rname", "\u202egpj.exe", "invoice\u202efdp.exe", "\u2066x\u2069",
    "\u200b", "a\u200bb", "\ufeffbom", "zw\u200dj", "soft\u00adhyphen", "cafe\u0301",
    "caf\u00e9", "\u1e9b\u0323", "\u212b", "\u00c5", "A\u030a", "\ufb01le", "\U0001f600",
    "CON", "nul.txt", "~", "$HOME", "%2e%2e", "..%2f..%2f", "name ", " name", "\u3000",
    "x" * 255, "x" * 256, "\u00e9" * 255, "e\u0301" * 200, "\U0001f600" * 255, "x" * 1000,
    "y" * 5000,
]


def long_text(min_size: int = 250, max_size: int = 3000) -> st.SearchStrategy[str]:
    """A long string: one hostile character repeated, cheap to generate at any length."""
    return st.builds(lambda char, size: (char * size)[:size], HOSTILE_CHAR,
                     st.integers(min_size, max_size))


NAMES = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(HOSTILE_CHAR, max_size=24),
    long_text(),
    st.builds(lambda a, b: a + b, st.sampled_from(SPECIAL_NAMES), st.text(HOSTILE_CHAR,
                                                                         max_size=8)),
)
SEPARATORS = st.sampled_from(["/", "//", "/./", "/../", "\\", "/\x00/", "/ /", "/\u200b/"])
PATHS = st.one_of(
    st.sampled_from(["", "/", "//", "///", ".", "./", "/.", "/..", "../", "/a/../b",
                     "/a/./b", "a//b/", "\\a\\b", "/\x00", "/a\x00/b", "/\u202e/x",
                     "/" + "a/" * 300, "/" + "x" * 1100, "/" + "/".join(["\u00e9" * 200] * 6),
                     "/cafe\u0301/x", "/caf\u00e9/x"]),
    st.lists(NAMES, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    st.builds(lambda lead, parts, sep: lead + sep.join(parts),
              st.sampled_from(["", "/", "//", "./", "../"]),
              st.lists(st.text(HOSTILE_CHAR, min_size=1, max_size=10), max_size=5), SEPARATORS),
)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# URLs ("{base}" is the loopback HTTP server the upload service may fetch from) and link types.

URLS = st.one_of(
    st.sampled_from([
        "{base}/ok.jpg", "{base}/html", "{base}/missing", "http://127.0.0.1:1/x",
        "http://10.0.0.1/a.jpg", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x", "file:///etc/passwd", "javascript:alert(1)",
        "https://user:pw@example.com/a.jpg", "https://example.com/a b.jpg",
        "https://example.com/\x00", "https://exa\u202emple.com/", "https:///x", "https://",
        "http://example.com:99999/", "https://" + "a" * 64 + ".com/", "//example.com/a",
        "https://example.com/" + "x" * 3000, "HTTPS://EXAMPLE.COM/A.JPG",
        "https://xn--e1afmkfd.xn--p1ai/", "https://\u00e9xample.com/a.jpg", "",
    ]),
    st.text(HOSTILE_CHAR, max_size=40),
    st.text(HOSTILE_CHAR, max_size=20).map(lambda tail: "https://example.com/" + tail),
)
# URLs the services may be asked to fetch: the loopback server, or addresses the fetch policy
# refuses without a connection, or no URL at all. Never a host name: tests resolve nothing.
FETCHABLE_URLS = st.one_of(
    st.sampled_from([
        "{base}/ok.jpg", "{base}/ok.txt", "{base}/html", "{base}/missing", "{base}/ok.jpg?x=\u00e9",
        "{base}/%2e%2e/%2e%2e/etc/passwd", "{base}/../../etc/passwd", "{base}/ok.jpg#frag",
        "http://127.0.0.1:1/x", "http://10.0.0.1/a.jpg", "http://169.254.169.254/latest/",
        "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://[fe80::1%25eth0]/x",
        "http://0.0.0.0/x", "http://100.64.0.1/x", "http://224.0.0.1/x", "file:///etc/passwd",
        "javascript:alert(1)", "https://user:pw@127.0.0.1/a.jpg", "http://127.0.0.1:99999/",
        "https://", "https:///x", "//127.0.0.1/a", "", "{base}/" + "x" * 3000,
    ]),
    st.text(HOSTILE_CHAR, max_size=40).filter(lambda text: "//" not in text),
)
MIMETYPES = st.one_of(st.sampled_from(["image/jpeg", "image", "video", "IMAGE/PNG", "",
                                       "text/html", "image/", "/", "x" * 300, "image/jpeg\x00",
                                       "application/vnd.a+json"]),
                      st.text(HOSTILE_CHAR, max_size=12))


# JSON metadata.

ODD_KEYS = st.one_of(
    st.sampled_from(["", " ", ".", "a.b", "..", "$", "$where", "$ref", "\x00", "k\x00",
                     "__proto__", "constructor", "a" * 300, "\u202ekey", "\U0001f600",
                     "null", "0", "-1", "metadata.system", "\\", "'", '"', "k'--", "{}",
                     "a[0]", "*", "?"]),
    st.text(HOSTILE_CHAR, max_size=12),
)
NUMBERS = st.one_of(st.integers(-(2**63), 2**63),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, 2.0**53, 2.0**53 + 2, 1e308, -1e308, 5e-324,
                                     math.nan, math.inf, -math.inf]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(HOSTILE_CHAR, max_size=30))
JSON = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(ODD_KEYS, kids, max_size=4)), max_leaves=16)


def nested(depth: int, leaf: Any = 1, key: str = "a", lists: bool = False) -> Any:
    """An object (or list) nesting `depth` levels."""
    value = leaf
    for level in range(depth):
        value = [value] if lists and level % 2 else {key: value}
    return value


# Around the catalog's limit (20) and protobuf's (about 32 object levels), and beyond.
DEPTHS = st.one_of(st.sampled_from([19, 20, 21, 26, 31, 32, 33, 34, 40, 45, 50, 60, 120]),
                   st.integers(1, 120))
OBJECTS = st.one_of(
    st.dictionaries(ODD_KEYS, JSON, max_size=6),
    st.builds(nested, DEPTHS, SCALARS, st.sampled_from(["a", "", "$", "\x00"]),
              st.sampled_from([False, False, True])),
    st.builds(lambda size: {"big": "x" * size},
              st.sampled_from([60_000, 1024 * 1024 - 20, 1024 * 1024 + 10, 3 * 1024 * 1024])),
    st.builds(lambda count: {f"k{i}": i for i in range(count)},
              st.sampled_from([1000, 20_000])),
    st.builds(lambda value: {"v": value}, NUMBERS),
).filter(lambda value: isinstance(value, dict))


def fill_value(target: struct_pb2.Value, value: Any) -> None:
    """Sets a protobuf Value in place to a JSON value (NaN and infinities included)."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int | float):
        target.number_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, list):
        target.list_value.SetInParent()
        for member in value:
            fill_value(target.list_value.values.add(), member)
    else:
        target.struct_value.SetInParent()
        fill_struct(target.struct_value, value)


def fill_struct(target: struct_pb2.Struct, value: dict[str, Any]) -> None:
    for key, member in value.items():
        fill_value(target.fields[key], member)


def json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


# Filters (filters.proto).

FIELDS = st.one_of(
    st.sampled_from(["name", "dir", "filename", "type", "mimetype", "size", "created_at",
                     "updated_at", "create_time", "update_time", "metadata.system.mimetype",
                     "metadata.user.camera", "metadata.user.lot.number", "metadata.user.tags",
                     "metadata.user.note", "metadata.system.width", "metadata.user._x-y",
                     "metadata.user", "metadata.user.", "metadata.user..a", "metadata.user.a.",
                     "metadata.user.1a", "metadata.user.$a", "metadata.user.a'b",
                     "metadata.user.a\"b", "metadata.user.a b", "metadata.user.a[0]",
                     "metadata.user.a\x00", "metadata.user." + "k." * 20 + "k",
                     "metadata.user." + "k" * 65, "metadata.other.a", "metadata", "id", "",
                     "NAME", " name", "name ", "metadata.user.\u00e9"]),
    st.text(HOSTILE_CHAR, max_size=20),
    st.text(HOSTILE_CHAR, max_size=12).map(lambda key: "metadata.user." + key),
)
# Every operator, plus values no enum names (proto3 enums are open).
OPERATORS = st.one_of(st.sampled_from(list(filters_pb2.FilterOperator.values())),
                      st.sampled_from([11, 99, -1, 2**31 - 1]))
TIMES = st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24", "2026-11-24T10:00:00z",
                         "2026-11-24T10:00:00+14:00", "0001-01-01T00:00:00+14:00",
                         "0001-01-01", "9999-12-31T23:59:59-14:00", "9999-12-31",
                         "2026-02-30", "2026-11-24T25:00:00Z", "yesterday", "",
                         "2026-11-24T10:00:00.123456789Z", "+002026-11-24", "1e10"])
GLOBS = st.one_of(
    st.sampled_from(["*", "**", "?", "*.jpg", "/**", "/**/", "**/", "/a/**", "[abc]", "[!a]",
                     "{a,b}", "\\*", "*\\", "(", ")", "^$", ".*", "a|b", "%", "_", "\\",
                     "*" * 200, "**" * 100, "?" * 300, "/**" * 50, "*a" * 12 + "b",
                     "\U0010ffff", "x" * 1024, "x" * 1025, "\x00"]),
    st.text(st.one_of(HOSTILE_CHAR, st.sampled_from(list("*?/[]{}()\\.^$|+"))), max_size=30),
)
FILTER_SCALARS = st.one_of(SCALARS, TIMES, GLOBS, st.sampled_from(["file", "dir", "link",
                                                                   "image/jpeg"]))
FILTER_VALUES = st.one_of(
    FILTER_SCALARS,
    st.lists(FILTER_SCALARS, max_size=6),
    st.builds(lambda size: list(range(size)), st.sampled_from([0, 1000, 1001, 5000])),
    st.lists(st.lists(FILTER_SCALARS, max_size=2), max_size=3),
    st.dictionaries(ODD_KEYS, FILTER_SCALARS, max_size=3),
)
# (field, operator, whether the value is set, value)
CONDITIONS = st.tuples(FIELDS, OPERATORS, st.integers(0, 9).map(bool), FILTER_VALUES)


_OP = filters_pb2.FilterOperator
_EQUALITY = [_OP.FILTER_OPERATOR_EQ, _OP.FILTER_OPERATOR_NE, _OP.FILTER_OPERATOR_IN,
             _OP.FILTER_OPERATOR_NIN]
_RANGE = [_OP.FILTER_OPERATOR_GT, _OP.FILTER_OPERATOR_GTE, _OP.FILTER_OPERATOR_LT,
          _OP.FILTER_OPERATOR_LTE]
_GLOB, _EXISTS = _OP.FILTER_OPERATOR_GLOB, _OP.FILTER_OPERATOR_EXISTS
TEXTS = st.one_of(st.sampled_from([
    "a.jpg", "b.png", "caf\u00e9.jpg", "cafe\u0301.jpg", "\u65e5\u672c.png", "[weird]*?.txt", "z",
    "\U0001f600", "%_", "e\u0301", "\u00e9", "/", "/2024", "/2024/", "2024", "/2024/photos",
    "/caf\u00e9", "/cafe\u0301", "/x y", "/deep/a/b/c", "/a.jpg", "/2024/b.png", "",
    "by the door", "\u00e9t\u00e9", "e\u0301te\u0301", "100%_\\", "3", "7", "image/jpeg",
    "image/png", "text/plain", "640"]), st.text(HOSTILE_CHAR, max_size=8))
TEXT_GLOBS = st.one_of(st.sampled_from([
    "*", "**", "*.jpg", "*.png", "?.jpg", "/2024/**", "/**", "**/*.png", "/2024/**/*.jpg",
    "caf*", "cafe\u0301*", "*\u00e9*", "[weird]*", "*%_*", "/x y/*", "image/*", "*/*", "/*/*/*",
    "**a**b**", "*a*a*a*a*a*a*b", "?", "??", "\\*", "**/"]), GLOBS)
JSON_SCALARS = st.one_of(st.sampled_from([3, "3", 4.5, 7, "7", 7.0, True, False, 0, -1,
                                          -1e308, 2**53, 640, "640", "", "z", "x", 1, 2]),
                         SCALARS, TEXTS)
METADATA_FIELDS = st.sampled_from([
    "metadata.user.camera", "metadata.user.lot.number", "metadata.user.lot", "metadata.user.tags",
    "metadata.user.note", "metadata.user.flag", "metadata.user._x-y", "metadata.user.missing",
    "metadata.system.width", "metadata.system.mimetype", "metadata.system.executionLogs"])


def _plausible(field: st.SearchStrategy[str], operators: list[int],
               values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Conditions a real client could send: the right operators, and values of the right
    type most of the time (lists for in/nin, booleans for exists)."""
    def value_for(operator: int) -> st.SearchStrategy[Any]:
        if operator in (_OP.FILTER_OPERATOR_IN, _OP.FILTER_OPERATOR_NIN):
            return st.lists(values, min_size=1, max_size=4)
        if operator == _EXISTS:
            return st.booleans()
        if operator == _GLOB:
            return TEXT_GLOBS
        return values

    return st.tuples(field, st.sampled_from(operators)).flatmap(
        lambda pair: st.tuples(st.just(pair[0]), st.just(pair[1]), st.just(True),
                               value_for(pair[1])))


PLAUSIBLE_CONDITIONS = st.one_of(
    _plausible(st.sampled_from(["name", "dir", "filename"]), [*_EQUALITY, *_RANGE, _GLOB],
               TEXTS),
    _plausible(st.just("type"), _EQUALITY, st.sampled_from(["file", "dir", "link"])),
    _plausible(st.just("size"), [*_EQUALITY, *_RANGE], st.sampled_from([0, 3, 2, 4, -1, 1e300])),
    _plausible(st.sampled_from(["created_at", "updated_at"]),
               [_OP.FILTER_OPERATOR_EQ, _OP.FILTER_OPERATOR_NE, *_RANGE], TIMES),
    _plausible(st.sampled_from(["mimetype", "metadata.system.mimetype"]),
               [*_EQUALITY, *_RANGE, _GLOB, _EXISTS], TEXTS),
    _plausible(METADATA_FIELDS, [*_EQUALITY, *_RANGE, _GLOB, _EXISTS], JSON_SCALARS),
)


def filter_trees(conditions: st.SearchStrategy[tuple[Any, ...]] = CONDITIONS,
                 plausible: bool = False) -> st.SearchStrategy[Any]:
    """A tree of ("cond", field, operator, has_value, value) leaves, ("all"|"any", members)
    groups and ("empty",), an ItemFilter that sets nothing. Plausible trees have no empty
    parts and mostly stay within the limits (8 levels, 100 conditions)."""
    conditions = conditions.map(lambda c: ("cond", *c))
    leaves = conditions if plausible else st.one_of(conditions, st.just(("empty",)))
    groups = st.recursive(leaves, lambda kids: st.tuples(
        st.sampled_from(["all", "any"]), st.lists(kids, min_size=int(plausible), max_size=4)),
        max_leaves=12)
    deep = st.builds(_chain, st.integers(2 if plausible else 6, 12), conditions)
    wide = st.builds(lambda count, leaf: ("any", [leaf] * count),
                     st.sampled_from([3, 50, 100, 101, 400]), conditions)
    return st.one_of(groups, groups, groups, deep, wide)


def _chain(depth: int, leaf: Any) -> Any:
    tree = leaf
    for level in range(depth):
        tree = ("all" if level % 2 else "any", [tree])
    return tree


def build_filter(target: filters_pb2.ItemFilter, tree: Any) -> None:
    """Fills an ItemFilter in place from a tree of filter_trees()."""
    kind = tree[0]
    if kind == "empty":
        return
    if kind == "cond":
        _, field, operator, has_value, value = tree
        target.condition.field = field
        target.condition.operator = operator
        if has_value:
            fill_value(target.condition.value, value)
        else:
            target.condition.SetInParent()
        return
    group = target.all_of if kind == "all" else target.any_of
    group.SetInParent()
    for member in tree[1]:
        build_filter(group.filters.add(), member)
