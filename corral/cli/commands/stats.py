"""corral stats"""

from __future__ import annotations

import argparse

from corral.cli.common import open_client, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stats", help="preprocessing counters as JSON")
    parser.set_defaults(handler=show_stats)


def show_stats(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        print_json(client.preprocess_stats())
    return 0
