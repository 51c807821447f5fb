"""Link files: an uploaded JSON file in Dataloop's link format becomes a link item (a
reference to a URL) instead of a stored JSON file.

    {"type": "link", "shebang": "dataloop",
     "metadata": {"dltype": "link",
                  "linkInfo": {"type": "url", "ref": "https://...", "mimetype": "image/jpeg"}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from corral.errors import InvalidArgument

# Link files are tiny; larger uploads are never inspected.
MAX_LINK_FILE_BYTES = 64 * 1024
SHEBANGS = ("dataloop", "corral")


@dataclass(frozen=True)
class LinkTarget:
    url: str
    mimetype: str


def _field(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def parse_link_file(content: bytes) -> LinkTarget | None:
    """The link a link file describes; None for any other content. A file that declares
    itself a link ("type": "link" with a known shebang) but is malformed is refused, naming
    the field, rather than silently stored as JSON."""
    if len(content) > MAX_LINK_FILE_BYTES or content.lstrip()[:1] != b"{":
        return None
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..."
        return None
    if not isinstance(data, dict) or data.get("type") != "link" \
            or data.get("shebang") not in SHEBANGS:
        return None
    expected = {"metadata.dltype": "link", "metadata.linkInfo.type": "url"}
    for path, value in expected.items():
        if _field(data, path) != value:
            raise InvalidArgument(f"link file: {path} must be {value!r}")
    url = _field(data, "metadata.linkInfo.ref")
    if not isinstance(url, str) or not url:
        raise InvalidArgument("link file: metadata.linkInfo.ref must be the URL")
    mimetype = _field(data, "metadata.linkInfo.mimetype")
    if mimetype is not None and not isinstance(mimetype, str):
        raise InvalidArgument("link file: metadata.linkInfo.mimetype must be a string")
    for path, text in (("ref", url), ("mimetype", mimetype or "")):
        if not _is_unicode(text):
            raise InvalidArgument(f"link file: metadata.linkInfo.{path} holds a lone "
                                  "surrogate escape (\\ud800-\\udfff), which is not text")
    return LinkTarget(url=url, mimetype=mimetype or "")


def _is_unicode(text: str) -> bool:
    """False for a str holding a lone surrogate, which JSON's \\u escapes allow but UTF-8
    (and so protobuf) cannot carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
