"""Item names and folder paths: one set of rules for the SDK, the upload service and the catalog.

Bad names are refused, never silently rewritten, so a traversal attempt cannot land anywhere
unexpected. Blob keys are server-generated and never derived from these names.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass

from corral.errors import InvalidArgument

MAX_NAME_LENGTH = 255
MAX_PATH_LENGTH = 1024
NAME_LENGTH_ENV = "CORRAL_MAX_NAME_LENGTH"
PATH_LENGTH_ENV = "CORRAL_MAX_PATH_LENGTH"
# PostgreSQL btree entries hold at most ~2700 bytes, and the (dataset_id, dir, filename)
# index must fit one: longer paths cannot be allowed, whatever the setting says.
PATH_LENGTH_CEILING = 1280


@dataclass(frozen=True)
class PathLimits:
    """How long one name (characters) and a whole path (UTF-8 bytes) may be."""

    max_name_length: int = MAX_NAME_LENGTH
    max_path_length: int = MAX_PATH_LENGTH

    def __post_init__(self) -> None:
        if self.max_name_length < 1:
            raise ValueError(f"{NAME_LENGTH_ENV} must be at least 1, got {self.max_name_length}")
        if not 1 <= self.max_path_length <= PATH_LENGTH_CEILING:
            raise ValueError(f"{PATH_LENGTH_ENV} must be between 1 and {PATH_LENGTH_CEILING} "
                             f"bytes (the database index limit), got {self.max_path_length}")

    @classmethod
    def from_env(cls) -> PathLimits:
        """The SDK and CLI read the services' variables, so that a client does not refuse a
        name its server accepts."""
        return cls(int(os.environ.get(NAME_LENGTH_ENV) or MAX_NAME_LENGTH),
                   int(os.environ.get(PATH_LENGTH_ENV) or MAX_PATH_LENGTH))


def _initial_limits() -> PathLimits:
    try:
        return PathLimits.from_env()
    except ValueError:  # services refuse a bad value at start; a client keeps the defaults
        return PathLimits()


_limits = _initial_limits()


def path_limits() -> PathLimits:
    return _limits


def set_path_limits(limits: PathLimits) -> None:
    """Sets this process's limits; services call it once at start from their settings."""
    global _limits
    _limits = limits


def check_path_length(path: str, field: str) -> str:
    """Refuses a folder path or full filename longer than the path limit (in UTF-8 bytes)."""
    limit = _limits.max_path_length
    # A character is at most 4 bytes in UTF-8: short paths skip the encoding.
    if len(path) > limit // 4 and (size := len(path.encode())) > limit:
        raise InvalidArgument(f"{field} is {size} bytes long; the limit is {limit} bytes "
                              f"({PATH_LENGTH_ENV})")
    return path


# Exactly Unicode category Cc (C0 controls, DEL, C1 controls); a regex, not a loop over
# unicodedata, because bulk loads check millions of names.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Unicode category Cf (format characters: bidi overrides and isolates, zero-width spaces, soft
# hyphen, BOM, invisible operators, tag characters) except ZWNJ and ZWJ (U+200C, U+200D), which
# emoji sequences and several scripts need. The others are invisible or reorder the text around
# them, so they let a name pass for another ("invoice\u202efdp.exe" shows as "invoiceexe.pdf",
# "a\u200bb" as "ab"). Unicode 14 (Python 3.11); tests/hostile checks it against unicodedata.
_INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]")
_FORBIDDEN = {"/": "'/'", "\\": "a backslash", "\x00": "NUL"}


def check_name(name: str, field: str = "name") -> str:
    """Returns the NFC form of a single path component, or raises InvalidArgument."""
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise InvalidArgument(f"{field} must not be empty")
    if name in (".", ".."):
        raise InvalidArgument(f"{field} must not be '.' or '..'")
    for char, label in _FORBIDDEN.items():
        if char in name:
            raise InvalidArgument(f"{field} must not contain {label}: {name!r}")
    if _CONTROL.search(name):
        raise InvalidArgument(f"{field} must not contain control characters: {name!r}")
    check_visible(name, field)
    limit = _limits.max_name_length
    if len(name) > limit:
        raise InvalidArgument(f"{field} is {len(name)} characters long; the limit is {limit} "
                              f"characters per name ({NAME_LENGTH_ENV})")
    return name


def check_visible(text: str, field: str) -> str:
    """Refuses invisible formatting characters (see _INVISIBLE), naming the first one."""
    found = None if text.isascii() else _INVISIBLE.search(text)
    if found is not None:
        raise InvalidArgument(
            f"{field} must not contain invisible formatting characters (bidi controls, "
            f"zero-width spaces, soft hyphens, byte order marks): U+{ord(found[0]):04X} in "
            f"{text!r}")
    return text


def normalize_dir(path: str, field: str = "dir") -> str:
    """Returns a folder path as "/" or "/a/b": leading slash added, repeated and trailing
    slashes folded; '.', '..', backslashes, NUL and control characters are refused."""
    if "\\" in path:
        raise InvalidArgument(f"{field} must not contain a backslash: {path!r}")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        check_name(part, field)
    normalized = "/" + "/".join(unicodedata.normalize("NFC", p) for p in parts)
    return check_path_length(normalized, field)


def join(dir_path: str, name: str) -> str:
    """The full filename of `name` inside the normalized folder `dir_path`."""
    return f"/{name}" if dir_path == "/" else f"{dir_path}/{name}"


def split_filename(filename: str, field: str = "filename") -> tuple[str, str]:
    """Splits "/a/b/c.jpg" into ("/a/b", "c.jpg"), validating both parts."""
    full = normalize_dir(filename, field)
    if full == "/":
        raise InvalidArgument(f"{field} must name an item, not the root folder")
    dir_path, _, name = full.rpartition("/")
    return (dir_path or "/"), name


def ancestors(dir_path: str) -> list[str]:
    """Every folder from the root down to `dir_path` itself, excluding "/": "/a/b" ->
    ["/a", "/a/b"]."""
    parts = [p for p in dir_path.split("/") if p]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
