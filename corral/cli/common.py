"""What every command shares: the client, item references, JSON and table output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from corral import paths
from corral.client import Client, ItemDict
from corral.errors import CorralError
from corral.structs import parse_json_object


def open_client(args: argparse.Namespace) -> Client:
    return Client(catalog_addr=args.catalog_addr, upload_addr=args.upload_addr,
                  preprocess_addr=args.preprocess_addr, project=getattr(args, "project", None))


def resolve_item(client: Client, ref: str) -> ItemDict:
    """An item by id, or by "DATASET:/path/to/file" (dataset names never contain "/", so the
    first ":/" separates the two)."""
    dataset, sep, path = ref.partition(":/")
    if sep:
        return client.get_item_by_path(dataset, "/" + path)
    return client.get_item(ref)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right_aligned: Sequence[int] = ()) -> None:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if i in right_aligned else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def json_object_arg(text: str) -> dict[str, Any]:
    """argparse type for a JSON object, so bad input is a usage error (exit 2)."""
    try:
        return parse_json_object(text)
    except CorralError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def remote_dir_arg(text: str) -> str:
    try:
        return paths.normalize_dir(text, "remote path")
    except CorralError as exc:
        raise argparse.ArgumentTypeError(exc.message) from exc


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def warn(message: str) -> None:
    print(message, file=sys.stderr)
