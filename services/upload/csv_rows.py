"""A push-style streaming parser for CSV imports: byte chunks in, validated rows out.

Only the lines of the record being read are buffered, so memory stays bounded by max_row_bytes
plus one chunk. The stdlib csv module (C) does the parsing, fed whole physical lines: when the
buffered lines end inside a record, the line iterator raises _NeedMore and the record is read
again from its first line once more data has come.
"""

from __future__ import annotations

import binascii
import codecs
import csv
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from corral.errors import InvalidArgument
from corral.paths import check_name
from services.common.metadata_limits import checked_json_text

# Header names (matched stripped and lowercased) -> the spelling used in messages.
COLUMNS = {"id": "ID", "url": "URL", "image_bytes": "image_bytes", "name": "name",
           "action": "action", "mimetype": "mimetype", "item_metadata": "item_metadata",
           "item_description": "item_description"}
ACTIONS = ("link", "upload")
DEFAULT_MIMETYPE = "image/jpeg"
MIMETYPE_FAMILIES = ("image", "video")  # kept as given: the integrator treats them as families
MAX_DESCRIPTION = 10_000
_MIMETYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_BAD = "INVALID_ARGUMENT"


@dataclass(frozen=True)
class CsvRow:
    row: int  # 1-based data row number (header not counted)
    line: int  # 1-based line number in the file where the row starts
    item_id: str
    name: str  # name, or ID when name is empty; NFC form from check_name
    action: str  # "link" or "upload"
    url: str  # "" when image_bytes is used
    content: bytes | None  # decoded image_bytes, None for URL rows
    mimetype: str  # lowercase; "image/jpeg" by default; "image" / "video" are families
    user_metadata: dict[str, Any]
    description: str


@dataclass(frozen=True)
class RowError:
    row: int
    line: int
    item_id: str
    action: str
    code: str  # gRPC status name
    message: str  # starts with the column it is about


class _NeedMore(Exception):
    """The buffered lines end inside a record."""


class _BadRow(Exception):
    """A row fails validation; the message names the column."""


def _need_more() -> Iterator[str]:
    raise _NeedMore
    yield ""  # never reached: it makes this a generator, so chain() raises only when it gets here


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)  # one decoder: json.loads builds one


def _metadata(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = _JSON.decode(text)
    except json.JSONDecodeError as e:
        raise _BadRow(f"item_metadata: not valid JSON: {e.msg} at char {e.pos}") from None
    except (ValueError, RecursionError) as e:  # NaN/Infinity, huge ints, deep nesting
        raise _BadRow(f"item_metadata: not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise _BadRow(f"item_metadata: must be a JSON object, not {type(value).__name__}")
    _check_storable(value)
    try:
        checked_json_text(value, "item_metadata")  # size and depth, as the catalog checks
    except InvalidArgument as e:
        raise _BadRow(e.message) from None
    return value


def _check_storable(value: dict[str, Any]) -> None:
    """What Python's json reads but a protobuf Struct cannot carry: numbers that overflow a
    double (1e400 reads as infinity, 10**400 stays an int) and strings holding a lone
    surrogate ("\\ud800"), which are not Unicode text. (The catalog checks the rest.)"""
    todo: list[Any] = [value]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                raise _BadRow("item_metadata: a string holds a lone surrogate escape "
                              f"({node.encode(errors='backslashreplace').decode()[:40]!r}), "
                              "which is not Unicode text") from None
        elif isinstance(node, int | float) and not _fits_double(node):
            raise _BadRow("item_metadata: a number is too large for a double (at most about "
                          "1.8e308)")


def _fits_double(number: float) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an int float() cannot round to a finite double
        return False


class CsvRowParser:
    """feed() the file's bytes in chunks of any size, then finish(); each returns the rows read
    so far as CsvRow or RowError, in file order. A header problem, invalid UTF-8 or an oversized
    header raise InvalidArgument: the whole import is refused."""

    def __init__(self, check_url: Callable[[str], str], *, max_row_bytes: int = 64 << 20) -> None:
        self._check_url, self._max = check_url, max_row_bytes
        # Process-wide, only ever raised: a base64 image is one (large) field.
        csv.field_size_limit(max(csv.field_size_limit(), max_row_bytes))
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()  # drops an Excel BOM
        self._lines: list[str] = []  # complete physical lines; the first starts a record
        self._size = 0  # characters in _lines
        self._retry_at = 0  # re-read a partial record once _size doubles: linear, not quadratic
        self._tail: list[str] = []  # the unfinished last line, in pieces
        self._tail_len = 0
        self._line = 1  # line number of _lines[0] (or of the tail when _lines is empty)
        self._rows = 0
        self._index: dict[str, int] | None = None  # column -> position, from the header
        self._width = 0
        self._skipping = False  # dropping an oversized record until its quotes balance
        self._parity = 0

    def feed(self, chunk: bytes) -> list[CsvRow | RowError]:
        return self._take(self._decode(chunk, final=False), final=False)

    def finish(self) -> list[CsvRow | RowError]:
        out = self._take(self._decode(b"", final=True), final=True)
        if self._index is None:
            raise InvalidArgument("CSV: no header row (the file is empty)")
        return out

    def _decode(self, chunk: bytes, final: bool) -> str:
        try:
            return self._decoder.decode(chunk, final)
        except UnicodeDecodeError as e:  # everything after it is suspect: refuse the import
            line = self._line + len(self._lines) + e.object[: e.start].count(b"\n")
            raise InvalidArgument(f"CSV: line {line} is not valid UTF-8") from None

    def _take(self, text: str, final: bool) -> list[CsvRow | RowError]:
        out: list[CsvRow | RowError] = []
        parts = text.split("\n")
        last = parts.pop()
        if parts:
            start = 0
            if self._skipping:
                start = self._skip(parts)
            else:
                parts[0] = "".join(self._tail) + parts[0]
            new = [p + "\n" for p in itertools.islice(parts, start, None)]
            self._lines += new
            self._size += sum(map(len, new))
            self._tail, self._tail_len = [], 0
        if self._skipping:
            self._parity ^= last.count('"') & 1
        elif last:
            self._tail.append(last)
            self._tail_len += len(last)
        if final and self._tail:
            self._lines.append("".join(self._tail))
            self._tail, self._tail_len = [], 0
        oversized = self._size + self._tail_len > self._max
        if self._lines and (final or oversized or self._size >= self._retry_at):
            self._parse(out, final)
        if not final and self._size + self._tail_len > self._max:
            self._drop_oversized(out)
        return out

    def _parse(self, out: list[CsvRow | RowError], final: bool) -> None:
        lines = self._lines
        reader = csv.reader(itertools.chain(lines, _need_more()), strict=True)
        done = 0  # lines taken by the records read so far
        try:
            while True:
                try:
                    for fields in reader:
                        start, done = done, reader.line_num
                        if fields:  # [] is an empty line
                            self._record(fields, self._line + start, out)
                except csv.Error as e:  # the reader resumes at the next line
                    start, done = done, reader.line_num
                    self._bad_record(lines[start:done], self._line + start, f"CSV: {e}", out)
        except _NeedMore:
            if final and reader.line_num > done:
                self._bad_record(lines[done:], self._line + done,
                                 "CSV: unterminated quoted field at end of file", out)
                done = len(lines)
        del lines[:done]
        self._line += done
        self._size = sum(map(len, lines))
        self._retry_at = 2 * self._size

    def _drop_oversized(self, out: list[CsvRow | RowError]) -> None:
        """Reports the record being read as too large and skips to the end of the line where
        its quotes balance (exact for RFC 4180 quoting)."""
        if self._index is None:
            raise InvalidArgument(f"CSV: the header is larger than {self._max} bytes")
        out.append(self._too_large(self._line))
        quotes = sum(line.count('"') for line in itertools.chain(self._lines, self._tail))
        self._line += len(self._lines)
        self._parity = quotes & 1
        self._skipping = bool(self._tail_len or self._parity)
        self._lines, self._size, self._retry_at = [], 0, 0
        self._tail, self._tail_len = [], 0

    def _skip(self, parts: list[str]) -> int:
        """Drops lines of an oversized record; returns how many of `parts` it took."""
        for i, part in enumerate(parts):
            self._parity ^= part.count('"') & 1
            self._line += 1
            if not self._parity:
                self._skipping = False
                return i + 1
        return len(parts)

    def _record(self, fields: list[str], line: int, out: list[CsvRow | RowError]) -> None:
        if self._index is None:
            self._set_header(fields, line)
        elif sum(map(len, fields)) > self._max:  # it came whole in one chunk
            out.append(self._too_large(line))
        else:
            self._rows += 1
            out.append(self._row(fields, line))

    def _too_large(self, line: int) -> RowError:
        self._rows += 1  # sizes are counted in decoded characters
        return RowError(self._rows, line, "", "", _BAD, f"row is larger than {self._max} bytes")

    def _bad_record(self, lines: list[str], line: int, message: str,
                    out: list[CsvRow | RowError]) -> None:
        if self._index is None:
            raise InvalidArgument(f"{message} (header, line {line})")
        self._rows += 1
        try:  # the lenient reader may still read the ID
            fields = next(csv.reader(lines), [])
        except csv.Error:
            fields = []
        position = self._index["id"]
        item_id = fields[position] if position < len(fields) else ""
        out.append(RowError(self._rows, line, item_id, "", _BAD, f"{message} (line {line})"))

    def _set_header(self, fields: list[str], line: int) -> None:
        index: dict[str, int] = {}
        for position, raw in enumerate(fields):
            key = raw.strip().lower()
            if key not in COLUMNS:
                raise InvalidArgument(f"CSV header (line {line}): unknown column {raw.strip()!r}"
                                      f" (column {position + 1}); expected "
                                      + ", ".join(COLUMNS.values()))
            if key in index:
                raise InvalidArgument(f"CSV header (line {line}): duplicate column "
                                      f"{COLUMNS[key]!r}")
            index[key] = position
        if "id" not in index:
            raise InvalidArgument(f"CSV header (line {line}): the ID column is required")
        if "url" not in index and "image_bytes" not in index:
            raise InvalidArgument(f"CSV header (line {line}): a URL or image_bytes column "
                                  "is required")
        self._index, self._width = index, len(fields)

    def _row(self, fields: list[str], line: int) -> CsvRow | RowError:
        assert self._index is not None
        count = len(fields)
        values = {key: fields[i] for key, i in self._index.items() if i < count}
        item_id = values.get("id", "")
        url = values.get("url", "").strip()
        data = "".join(values.get("image_bytes", "").split())
        action = values.get("action", "").strip().lower() or ("upload" if data else "link")
        try:
            if count > self._width:
                raise _BadRow(f"row has {count} fields, the header has {self._width}")
            return self._valid_row(self._rows, line, values, item_id, url, data, action)
        except _BadRow as e:
            return RowError(self._rows, line, item_id, action, _BAD, str(e))

    def _valid_row(self, row: int, line: int, values: dict[str, str], item_id: str, url: str,
                   data: str, action: str) -> CsvRow:
        if not item_id.strip():
            raise _BadRow("ID: required")
        if action not in ACTIONS:
            raise _BadRow(f"action: unknown action {values['action'].strip()!r}, "
                          "expected link or upload")
        if not url and not data:
            raise _BadRow("URL: required unless image_bytes is given")
        if url and data:  # ambiguous: refused rather than guessed
            raise _BadRow("URL: give either URL or image_bytes, not both")
        if action == "link" and not url:
            raise _BadRow("URL: required for action link")
        content = None
        if data:
            try:
                content = binascii.a2b_base64(data, strict_mode=True)
            except ValueError as e:  # binascii.Error, or non-ASCII text
                raise _BadRow(f"image_bytes: not valid base64: {e}") from None
            if not content:
                raise _BadRow("image_bytes: the content is empty")
        name = values.get("name", "")
        try:
            name = check_name(name, "name") if name else check_name(item_id, "ID")
        except InvalidArgument as e:
            raise _BadRow(e.message) from None
        mimetype = values.get("mimetype", "").strip().lower() or DEFAULT_MIMETYPE
        if mimetype not in MIMETYPE_FAMILIES and not _MIMETYPE.fullmatch(mimetype):
            raise _BadRow(f"mimetype: {mimetype!r} is not of the form type/subtype, "
                          "image or video")
        metadata = _metadata(values.get("item_metadata", ""))
        description = values.get("item_description", "")
        if len(description) > MAX_DESCRIPTION:
            raise _BadRow(f"item_description: longer than {MAX_DESCRIPTION} characters")
        if url:
            try:
                url = self._check_url(url)
            except InvalidArgument as e:
                message = e.message
                raise _BadRow(message if message.lower().startswith("url")
                              else f"URL: {message}") from None
        return CsvRow(row, line, item_id, name, action, url, content, mimetype, metadata,
                      description)
