"""Blob key checks shared by the stores. Keys are server-generated, so a bad key is a bug or an
attack; refusing it here keeps a filesystem store from ever touching a path outside its root."""

from __future__ import annotations

from corral.errors import InvalidArgument

MAX_KEY_LENGTH = 1024


def check_key(key: str) -> str:
    """Returns `key` if it is a relative POSIX path of plain components, else InvalidArgument."""
    if not key:
        raise InvalidArgument("blob key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"blob key is longer than {MAX_KEY_LENGTH} characters")
    if "\x00" in key or "\\" in key:
        raise InvalidArgument(f"blob key must not contain NUL or a backslash: {key!r}")
    if key.startswith("/"):
        raise InvalidArgument(f"blob key must be relative: {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidArgument(f"blob key has an empty, '.' or '..' component: {key!r}")
    return key
