"""corral metadata set | update: change metadata.user of one item, or of every item that
matches filters (merge patch by default, --replace for a full replace)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from corral.cli.common import open_client, print_json, resolve_item
from corral.client.filters import parse_value
from corral.errors import InvalidArgument

ASSIGN_HELP = ("KEY=VALUE: a dotted KEY sets a nested key (lot.number=7); VALUE is JSON when it "
               "parses as JSON (3, true, [1,2], \"3\"), a string otherwise")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("metadata", help="set or bulk-update user metadata")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    set_ = actions.add_parser("set", help="set keys of one item's metadata.user")
    set_.add_argument("item", help="an item id, or DATASET:/path/to/file")
    set_.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help=ASSIGN_HELP)
    _change_options(set_)
    set_.set_defaults(handler=set_metadata)

    update = actions.add_parser("update", help="change metadata.user of every matching item")
    update.add_argument("dataset", help="dataset name or id")
    update.add_argument("--filter", action="append", required=True, metavar="COND",
                        help="which items (repeat: all must match); see `corral ls --help`")
    update.add_argument("--set", dest="assignments", action="append", default=[],
                        metavar="KEY=VALUE", help=ASSIGN_HELP)
    _change_options(update)
    update.set_defaults(handler=update_metadata)


def _change_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--unset", action="append", default=[], metavar="KEY",
                        help="remove a key (dotted for nested keys)")
    parser.add_argument("--replace", action="store_true",
                        help="replace metadata.user with exactly the given keys instead of "
                             "merging them in")


def build_change(assignments: Sequence[str], unset: Sequence[str], replace: bool
                 ) -> dict[str, Any]:
    """The new metadata.user (replace) or the RFC 7386 merge patch (unset keys as null)."""
    if replace and unset:
        raise InvalidArgument("--unset has no meaning with --replace (unlisted keys go)")
    if not assignments and not unset and not replace:
        raise InvalidArgument("nothing to change: give KEY=VALUE or --unset KEY")
    change: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise InvalidArgument(f"{assignment!r} is not KEY=VALUE")
        _put(change, key, parse_value(value))
    for key in unset:
        _put(change, key, None)
    return change


def _put(target: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise InvalidArgument(f"{dotted!r} is not a key (empty part)")
    for key in keys[:-1]:
        nested = target.setdefault(key, {})
        if not isinstance(nested, dict):
            raise InvalidArgument(f"{dotted!r} sets inside {key!r}, which is also given a value")
        target = nested
    target[keys[-1]] = value


def set_metadata(args: argparse.Namespace) -> int:
    change = build_change(args.assignments, args.unset, args.replace)
    with open_client(args) as client:
        item = resolve_item(client, args.item)
        key = "user_metadata" if args.replace else "metadata_patch"
        updated = client.update_item(item["id"], **{key: change})
    print_json(updated["metadata"]["user"])
    return 0


def update_metadata(args: argparse.Namespace) -> int:
    change = build_change(args.assignments, args.unset, args.replace)
    key = "user_metadata" if args.replace else "metadata_patch"
    with open_client(args) as client:
        updated = client.update_matching_items(args.dataset, args.filter, **{key: change})
    print(f"updated {updated} items")
    return 0
