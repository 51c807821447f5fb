"""corral triggers create|list|get|update|pause|resume|delete"""

from __future__ import annotations

import argparse
from typing import Any

from corral.cli.common import open_client, print_json, print_table


def _actions(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _definition(parser: argparse.ArgumentParser, creating: bool) -> None:
    none = None if not creating else argparse.SUPPRESS
    parser.add_argument("--dataset", default=None,
                        help="only this dataset (name or id); default: every dataset"
                        + ("" if creating else "; '' for every dataset"))
    parser.add_argument("--filter", action="append", default=None,
                        help="a filter as in `corral ls --filter` (repeat: all must match)")
    if not creating:
        parser.add_argument("--no-filter", action="store_true", help="remove the filter")
    parser.add_argument("--actions", type=_actions, default=["created"] if creating else none,
                        help="comma-separated: created, updated, deleted"
                        + (" (default: created)" if creating else ""))
    parser.add_argument("--mode", choices=["once", "always"],
                        default="once" if creating else None,
                        help="once: an item runs at most once; always: every matching event"
                        + (" (default: once)" if creating else ""))
    parser.add_argument("--description", default="" if creating else None)
    parser.add_argument("--json", action="store_true", help="print the trigger as JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "triggers", help="run your own Python function on matching items (with corral worker)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a trigger")
    create.add_argument("name")
    _definition(create, creating=True)
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.set_defaults(handler=create_trigger)

    listing = actions.add_parser("list", help="list triggers")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=list_triggers)

    get = actions.add_parser("get", help="show one trigger as JSON")
    get.add_argument("name")
    get.set_defaults(handler=get_trigger)

    update = actions.add_parser("update", help="change a trigger (only the options given)")
    update.add_argument("name")
    _definition(update, creating=False)
    update.set_defaults(handler=update_trigger)

    for name, paused, text in (("pause", True, "stop running it; its events wait"),
                               ("resume", False, "run it again, events of the pause too")):
        command = actions.add_parser(name, help=text)
        command.add_argument("name")
        command.set_defaults(handler=set_paused, paused=paused, json=False)

    delete = actions.add_parser("delete", help="delete a trigger (item metadata stays)")
    delete.add_argument("name")
    delete.set_defaults(handler=delete_trigger)


def _show(args: argparse.Namespace, verb: str, trigger: dict[str, Any]) -> int:
    if args.json:
        print_json(trigger)
    else:
        state = "paused" if trigger["paused"] else "active"
        print(f"{verb} trigger {trigger['name']} ({trigger['mode']}, {state}, "
              f"on {','.join(trigger['actions'])}, group {trigger['consumer_group']})")
    return 0


def create_trigger(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        trigger = client.create_trigger(
            args.name, dataset=args.dataset, filter=args.filter, actions=args.actions,
            mode=args.mode, paused=args.paused, description=args.description)
    return _show(args, "created", trigger)


def list_triggers(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        triggers = list(client.list_triggers())
        names = {d["id"]: d["name"] for d in client.list_datasets()} if triggers else {}
    if args.json:
        print_json(triggers)
        return 0
    rows = [[t["name"], "paused" if t["paused"] else "active", t["mode"],
             ",".join(t["actions"]),
             names.get(t["dataset_id"], t["dataset_id"]) if t["dataset_id"] else "*",
             t["filter"] or ""] for t in triggers]
    print_table(["NAME", "STATE", "MODE", "ACTIONS", "DATASET", "FILTER"], rows)
    return 0


def get_trigger(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        print_json(client.get_trigger(args.name))
    return 0


def update_trigger(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.dataset is not None:
        changes["dataset"] = args.dataset or None
    if args.no_filter:
        changes["filter"] = None
    elif args.filter is not None:
        changes["filter"] = args.filter
    for name in ("actions", "mode", "description"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    with open_client(args) as client:
        trigger = client.update_trigger(args.name, **changes)
    return _show(args, "updated", trigger)


def set_paused(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        trigger = client.update_trigger(args.name, paused=args.paused)
    return _show(args, "paused" if args.paused else "resumed", trigger)


def delete_trigger(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.delete_trigger(args.name)
    print(f"deleted trigger {args.name}")
    return 0
