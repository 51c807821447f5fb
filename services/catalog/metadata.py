"""User metadata updates: full replace or RFC 7386 merge patch, as the update_mask chooses.
metadata.system belongs to the platform (preprocessing writes it); users cannot change it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corral.errors import InvalidArgument
from services.catalog.validation import check_json_object

REPLACE = "metadata.user"
MERGE = "metadata.user.*"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: an object patch merges key by key (recursively), a null value deletes the
    key, and anything else replaces the target."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def refuse_system_paths(paths: Iterable[str], field: str = "update_mask") -> None:
    for path in paths:
        if path == "metadata" or path == "metadata.system" or path.startswith(
                ("metadata.system.", "metadata.*")):
            raise InvalidArgument(f"{field} path {path!r}: metadata.system is read-only, "
                                  "written by the platform; update metadata.user instead")


def metadata_mode(paths: Iterable[str], field: str = "update_mask") -> str | None:
    """REPLACE, MERGE or None (metadata not updated) for the paths of an update_mask."""
    chosen = [path for path in paths if path in (REPLACE, MERGE)]
    if len(chosen) > 1:
        raise InvalidArgument(f"{field}: name either {REPLACE!r} (replace) or {MERGE!r} "
                              "(merge patch), not both")
    return chosen[0] if chosen else None


def updated_user_metadata(current: dict[str, Any], given: dict[str, Any], mode: str,
                          field: str) -> dict[str, Any]:
    """The new metadata.user: `given` itself (REPLACE) or `current` patched with it (MERGE),
    checked to be storable."""
    new = merge_patch(current, given) if mode == MERGE else given
    return check_json_object(new, field)
