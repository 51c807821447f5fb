"""CsvRowParser: the CSV format of the import, row errors, chunk boundaries, bounded memory."""

from __future__ import annotations

import base64
import random
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from corral.errors import InvalidArgument
from services.upload.csv_rows import CsvRow, CsvRowParser, RowError


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument("url: only http and https URLs can be linked")
    if " " in url:
        raise InvalidArgument("must not contain spaces")
    return url


def parse(data: bytes, sizes: Iterator[int] | None = None, **kwargs) -> list[CsvRow | RowError]:
    """Feeds `data` in chunks of the given sizes (one chunk by default), then finishes."""
    parser = CsvRowParser(check_url, **kwargs)
    out: list[CsvRow | RowError] = []
    pos = 0
    while pos < len(data):
        size = next(sizes) if sizes else len(data)
        out += parser.feed(data[pos:pos + size])
        pos += size
    return out + parser.finish()


def one(data: bytes) -> CsvRow | RowError:
    (result,) = parse(data)
    return result


def error(data: bytes) -> RowError:
    result = one(data)
    assert isinstance(result, RowError), result
    return result


def row(data: bytes) -> CsvRow:
    result = one(data)
    assert isinstance(result, CsvRow), result
    return result


PNG = b"\x89PNG\r\n\x1a\nfake"
PNG64 = base64.b64encode(PNG).decode()


def test_every_column() -> None:
    data = ("ID,URL,image_bytes,name,action,mimetype,item_metadata,item_description\n"
            'a1,https://x.test/a.jpg,,cat.jpg,LINK,Image/PNG,"{""k"": [1, 2]}",a cat\n'
            f"b2,,{PNG64},,,video,,\n"
            "c3,http://x.test/c,,,upload,,,\n").encode()
    link, upload, fetch = parse(data)
    assert link == CsvRow(1, 2, "a1", "cat.jpg", "link", "https://x.test/a.jpg", None,
                          "image/png", {"k": [1, 2]}, "a cat")
    assert upload == CsvRow(2, 3, "b2", "b2", "upload", "", PNG, "video", {}, "")
    assert fetch == CsvRow(3, 4, "c3", "c3", "upload", "http://x.test/c", None, "image/jpeg",
                           {}, "")


def test_headers_are_case_insensitive_in_any_order() -> None:
    data = b" Item_Description ,NAME,url , id\r\nd,n,https://x.test/1,7\r\n"
    assert row(data) == CsvRow(1, 2, "7", "n", "link", "https://x.test/1", None, "image/jpeg",
                               {}, "d")


def test_bom_crlf_and_quoting() -> None:
    data = ('\ufeffID,URL,item_description\r\n'
            '"a,1",https://x.test/a,"say ""hi"", twice"\r\n'
            'b,https://x.test/b,"two\r\nlines, ""quoted"""\r\n'
            'c,https://x.test/c,\r\n').encode()
    a, b, c = parse(data)
    assert (a.item_id, a.name, a.description, a.line) == ("a,1", "a,1", 'say "hi", twice', 2)
    assert (b.description, b.line, b.row) == ('two\r\nlines, "quoted"', 3, 2)
    assert (c.line, c.row, c.description) == (5, 3, "")


def test_empty_lines_are_skipped_and_counted_as_lines() -> None:
    data = b"\n\nID,URL\n\na,https://x.test/a\n\r\n\nb,https://x.test/b"
    a, b = parse(data)
    assert (a.row, a.line, b.row, b.line) == (1, 5, 2, 8)


def test_fewer_fields_are_empty() -> None:
    result = row(b"ID,URL,name,item_description\nx,https://x.test/x\n")
    assert (result.name, result.description) == ("x", "")


MIXED = ("\ufeffID,URL,image_bytes,name,action,mimetype,item_metadata,item_description\r\n"
         'a,https://x.test/a,,ä ü.jpg,,,"{""a"": ""€""}","multi\r\nline, with ""quotes"""\r\n'
         "\r\n"
         f'b,,"{PNG64[:8]}\n{PNG64[8:]}",,upload,image,,\r\n'
         "c,https://x.test/c,,../x,,,,\n"
         'd,https://x.test/d,,,,,"[1]",\n'
         "e,ftp://x.test/e,,,,,,\n"
         'f,"https://x.test/f","bad!",,,,,\n'
         'g,https://x.test/g,,,,,,"x"y\n'
         "h,https://x.test/h,,,,,,,extra\n"
         '"i","https://x.test/i",,,,,,"unterminated\r\nto the end\r\n').encode()


def test_chunk_boundaries_do_not_change_the_result() -> None:
    whole = parse(MIXED)
    assert [type(r).__name__ for r in whole] == ["CsvRow", "CsvRow"] + ["RowError"] * 7
    assert [r.line for r in whole] == [2, 5, 7, 8, 9, 10, 11, 12, 13]
    assert whole[0].description == 'multi\r\nline, with "quotes"'
    assert whole[1].content == PNG
    assert whole[-1].message.startswith("CSV: unterminated quoted field")
    assert whole[-1].item_id == "i"
    assert parse(MIXED, iter(lambda: 1, None)) == whole
    rng = random.Random(7)
    for _ in range(30):
        assert parse(MIXED, iter(lambda: rng.randint(1, 40), None)) == whole


@pytest.mark.parametrize("line, message", [
    (f"x,,{PNG64[:-1]}", "image_bytes: not valid base64:"),
    ("x,,a b c d e", "image_bytes: not valid base64:"),
    ("x,,====", "image_bytes: not valid base64:"),
    ("x,,ümlaut=", "image_bytes: not valid base64:"),
    ('x,http://x.test,,,,,"{bad"', "item_metadata: not valid JSON: Expecting property name"),
    ("x,http://x.test,,,,,", None),
    ("x,http://x.test,,,,,[1]", "item_metadata: must be a JSON object, not list"),
    ('x,http://x.test,,,,,"{""a"": NaN}"', "item_metadata: not valid JSON: NaN is not allowed"),
    ('x,http://x.test,,,,,"{""a"": -Infinity}"', "item_metadata: not valid JSON: -Infinity"),
    ("x,http://x.test,,,,,nope", "item_metadata: not valid JSON: Expecting value at char 0"),
    (",http://x.test", "ID: required"),
    ("  ,http://x.test", "ID: required"),
    (",", "ID: required"),
    ("x,", "URL: required unless image_bytes is given"),
    ("x,http://x.test,,,copy", "action: unknown action 'copy', expected link or upload"),
    (f"x,,{PNG64},,link", "URL: required for action link"),
    (f"x,,{PNG64},,UPLOAD", None),
    ("x,,,,upload", "URL: required unless image_bytes is given"),
    (f"x,http://x.test,{PNG64}", "URL: give either URL or image_bytes, not both"),
    ("x,http://x.test,,../x", "name must not contain '/'"),
    ("x,http://x.test,,..", "name must not be '.' or '..'"),
    ("x,http://x.test,,a/b", "name must not contain '/'"),
    ("x,http://x.test,,a\x00b", "name must not contain NUL"),
    ("a\\b,http://x.test", "ID must not contain a backslash"),
    ("..,http://x.test", "ID must not be '.' or '..'"),
    ("x,http://x.test,,,,jpeg", "mimetype: 'jpeg' is not of the form type/subtype"),
    ("x,http://x.test,,,,image/", "mimetype: 'image/' is not of the form type/subtype"),
    ("x,http://x.test,,,,VIDEO/MP4", None),
    ("x,file:///etc/passwd", "url: only http and https URLs can be linked"),
    ("x,http://x.test/a b", "URL: must not contain spaces"),
    ("x,http://x.test,,,,,,,extra", "row has 9 fields, the header has 8"),
])
def test_row_errors(line: str, message: str | None) -> None:
    header = "ID,URL,image_bytes,name,action,mimetype,item_metadata,item_description\n"
    result = one((header + line + "\n").encode())
    if message is None:
        assert isinstance(result, CsvRow)
    else:
        assert isinstance(result, RowError)
        assert result.message.startswith(message), result.message
        assert (result.row, result.line, result.code) == (1, 2, "INVALID_ARGUMENT")
        assert result.item_id == line.split(",")[0]


def test_row_error_carries_action() -> None:
    err = error(b"ID,URL,action\nx,,UPLOAD\n")
    assert (err.item_id, err.action) == ("x", "upload")


def test_long_description() -> None:
    ok = row(b"ID,URL,item_description\nx,http://x.test," + b"d" * 10_000 + b"\n")
    assert len(ok.description) == 10_000
    err = error(b"ID,URL,item_description\nx,http://x.test," + b"d" * 10_001 + b"\n")
    assert err.message == "item_description: longer than 10000 characters"


def test_bad_rows_do_not_stop_the_others() -> None:
    results = parse(b"ID,URL\n,http://x.test\na,http://x.test\n'\"b\"c',http://x.test\nd,\n"
                    b"e,http://x.test\n")
    assert [(r.row, type(r).__name__) for r in results] == [
        (1, "RowError"), (2, "CsvRow"), (3, "CsvRow"), (4, "RowError"), (5, "CsvRow")]


def test_malformed_quoting_is_a_row_error() -> None:
    a, bad, c = parse(b'ID,URL\na,http://x.test\n"b"x,http://x.test\nc,http://x.test\n')
    assert isinstance(bad, RowError) and bad.message.startswith("CSV: ")
    assert (bad.row, bad.line) == (2, 3)
    assert (c.row, c.line, c.item_id) == (3, 4, "c")


def test_unterminated_quote_at_eof() -> None:
    a, bad = parse(b'ID,URL\na,http://x.test\nb,"http://x.test\n\nmore')
    assert isinstance(a, CsvRow)
    assert isinstance(bad, RowError)
    assert (bad.row, bad.line, bad.item_id) == (2, 3, "b")
    assert bad.message == "CSV: unterminated quoted field at end of file (line 3)"


@pytest.mark.parametrize("data, message", [
    (b"ID,URL,colour\n", "unknown column 'colour' (column 3)"),
    (b"ID,URL,\n", "unknown column '' (column 3)"),
    (b"ID,URL,id\n", "duplicate column 'ID'"),
    (b"ID,url,Url\n", "duplicate column 'URL'"),
    (b"URL,name\nhttp://x.test,a\n", "the ID column is required"),
    (b"ID,name\nx,y\n", "a URL or image_bytes column is required"),
    (b"", "no header row"),
    (b"\n\r\n\n", "no header row"),
    (b"\xef\xbb\xbf", "no header row"),
    (b'"ID,URL\n', "unterminated quoted field"),
    (b"a1,https://x.test/a\n", "unknown column 'a1'"),
])
def test_bad_header_refuses_the_import(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(data)


def test_header_only_is_no_rows() -> None:
    assert parse(b"ID,image_bytes\r\n") == []


@pytest.mark.parametrize("data, line", [
    (b"ID,URL\na,http://x.test\n\xff,http://x.test\n", 3),
    (b"ID,URL\na,http://x.test/\xe2\x82", 2),  # truncated at the end of the file
    (b"\xef\xbb\xbfID,URL\n\n\n\xc0\xaf\n", 4),
])
def test_invalid_utf8_refuses_the_import(data: bytes, line: int) -> None:
    for sizes in (None, iter(lambda: 1, None)):
        with pytest.raises(InvalidArgument, match=f"line {line} is not valid UTF-8"):
            parse(data, sizes)


def test_oversized_rows_are_reported_and_skipped() -> None:
    data = (b"ID,URL,item_description\n"
            b"a,http://x.test,short\n"
            b"b,http://x.test," + b"x" * 500 + b"\n"
            b'c,http://x.test,"' + b"y\n" * 300 + b'"\n'
            b"d,http://x.test,short\n")
    for sizes in (None, iter(lambda: 7, None), iter(lambda: 64, None)):
        results = parse(data, sizes, max_row_bytes=200)
        assert [(r.row, r.line, type(r).__name__) for r in results] == [
            (1, 2, "CsvRow"), (2, 3, "RowError"), (3, 4, "RowError"), (4, 305, "CsvRow")]
        assert results[1].message == "row is larger than 200 bytes"


def test_oversized_header_refuses_the_import() -> None:
    with pytest.raises(InvalidArgument, match="header is larger than 100 bytes"):
        parse(b"ID," + b"x" * 200, iter(lambda: 50, None), max_row_bytes=100)


def test_large_base64_field() -> None:
    content = bytes(range(256)) * 4096  # 1 MiB: more than csv's default field size limit
    data = b'ID,image_bytes\r\nbig,"' + base64.encodebytes(content) + b'"\r\n'
    result = parse(data, iter(lambda: 65536, None))
    assert [r.content for r in result] == [content]


ROWS = 100_000


def big_csv(rows: int = ROWS, chunk: int = 64 << 10) -> Iterator[bytes]:
    """A large CSV made lazily, in chunks of about `chunk` bytes."""
    parts = [b"ID,URL,name,action,mimetype,item_metadata,item_description\r\n"]
    size = 0
    for i in range(rows):
        line = (f'img-{i},https://images.example.com/a/{i}.jpg,picture {i}.jpg,link,image/jpeg,'
                f'"{{""n"": {i}, ""tag"": ""cat""}}","a cat, number {i}"\r\n').encode()
        parts.append(line)
        size += len(line)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    yield b"".join(parts)


def test_large_csv_in_bounded_memory() -> None:
    parser = CsvRowParser(check_url)
    tracemalloc.start()
    try:
        count = last = 0
        for chunk in big_csv():
            for result in parser.feed(chunk):
                assert isinstance(result, CsvRow)
                count, last = count + 1, result.row
        count += len(parser.finish())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == last == ROWS
    assert peak < 20 << 20, f"peak {peak} bytes"
    print(f"\n{ROWS} rows, tracemalloc peak {peak / 2**20:.1f} MiB")


def test_parse_throughput() -> None:
    parser = CsvRowParser(check_url)
    count, busy = 0, 0.0
    for chunk in big_csv():
        started = time.perf_counter()
        count += len(parser.feed(chunk))
        busy += time.perf_counter() - started
    count += len(parser.finish())
    assert count == ROWS
    print(f"\nparsed {ROWS} rows in {busy:.2f} s: {ROWS / busy:,.0f} rows/s")
