"""Request checks shared by the domain functions; each error names the offending field."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import Any

from corral.errors import InvalidArgument
from corral.paths import NAME_LENGTH_ENV, PATH_LENGTH_ENV, check_visible, path_limits
from services.common.metadata_limits import checked_json_text

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_DATASET_NAME = 128
MAX_REQUEST_ID = 128
MAX_DESCRIPTION = 64 * 1024
MAX_BLOB_KEY = 512

BAD_TOKEN = "page_token is not a token from a previous response to this same query"

_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not _ID.fullmatch(value):
        raise InvalidArgument(f"{field} must be 32 lowercase hex characters, got {value!r}")
    return value


# Unicode category Cc: the C0 controls, DEL and the C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def check_dataset_name(name: str, field: str = "name") -> str:
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise InvalidArgument(f"{field} must not be empty")
    # The column holds 128 characters; a lower CORRAL_MAX_NAME_LENGTH applies too.
    limit = min(MAX_DATASET_NAME, path_limits().max_name_length)
    if len(name) > limit:
        setting = f" ({NAME_LENGTH_ENV})" if limit < MAX_DATASET_NAME else ""
        raise InvalidArgument(f"{field} is {len(name)} characters long; the limit is {limit} "
                              f"characters per dataset name{setting}")
    if "/" in name:
        raise InvalidArgument(f"{field} must not contain '/': {name!r}")
    if _has_control(name):
        raise InvalidArgument(f"{field} must not contain control characters: {name!r}")
    return check_visible(name, field)


def check_request_id(value: str, field: str = "request_id") -> str | None:
    """The request id, or None when the caller sent none."""
    if not value:
        return None
    if len(value) > MAX_REQUEST_ID or _has_control(value):
        raise InvalidArgument(
            f"{field} must be at most {MAX_REQUEST_ID} printable characters")
    return value


def check_description(value: str, field: str = "description") -> str:
    if len(value) > MAX_DESCRIPTION:
        raise InvalidArgument(f"{field} is longer than {MAX_DESCRIPTION} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise InvalidArgument(f"{field} must not contain NUL characters")
    return value


def check_sha256(value: str, field: str = "sha256") -> str:
    if not _SHA256.fullmatch(value):
        raise InvalidArgument(f"{field} must be 64 lowercase hex characters, got {value!r}")
    return value


def check_blob_key(value: str, field: str = "blob_key") -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > MAX_BLOB_KEY or _has_control(value):
        raise InvalidArgument(f"{field} must be at most {MAX_BLOB_KEY} printable characters")
    return value


# "image/jpeg", "application/vnd.foo+json"; or just the family "image" / "video".
_MIMETYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
MIMETYPE_FAMILIES = ("image", "video", "audio", "text")


def check_link_mimetype(value: str, field: str = "mimetype") -> str:
    """A link's declared mimetype, lowercased; "" means unknown (sniffed when fetched)."""
    value = value.strip().lower()
    if value and value not in MIMETYPE_FAMILIES and not _MIMETYPE.fullmatch(value):
        raise InvalidArgument(f"{field} must be a media type such as image/jpeg, or one of "
                              f"{', '.join(MIMETYPE_FAMILIES)}; got {value!r}")
    return value


def check_filename_length(filename: str, field: str = "filename") -> str:
    """The full path of an item (folder and name) within CORRAL_MAX_PATH_LENGTH bytes."""
    limit = path_limits().max_path_length
    if len(filename) > limit // 4 and (size := len(filename.encode())) > limit:
        raise InvalidArgument(f"{field}: the item's full path is {size} bytes long; the limit "
                              f"is {limit} bytes ({PATH_LENGTH_ENV})")
    return filename


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def check_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object both databases can store: finite numbers, no NUL, within the size and
    depth limits (services.common.metadata_limits)."""
    json_object_text(value, field)
    return value


def json_object_text(value: Any, field: str) -> str:
    """check_json_object, returning the object's JSON text (what the JSON columns store)."""
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object")
    text = checked_json_text(value, field)
    # NUL is always written as \u0000 in the text, so its absence there rules it out cheaply.
    if "\\u0000" in text and _holds_nul(value):  # PostgreSQL jsonb cannot hold \u0000
        raise InvalidArgument(f"{field} must not contain NUL characters")
    return text


def page_size(requested: int, field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument(f"{field} must not be negative, got {requested}")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def encode_page_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode()


def decode_page_token(token: str, field: str = "page_token") -> str | None:
    """The last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        key = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidArgument(f"{field} is not a token from a previous response") from exc
    if not key:
        raise InvalidArgument(f"{field} is not a token from a previous response")
    return key
