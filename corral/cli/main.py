"""Entry point of the `corral` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from corral import addresses
from corral.cli.commands import (
    admin,
    datasets,
    items,
    linking,
    metadata,
    preprocess,
    stats,
    triggers,
    up,
    upload,
    worker,
)
from corral.errors import CorralError

COMMANDS = (up, datasets, upload, linking, items, metadata, stats, triggers, worker,
            preprocess, admin)
# Options whose values may start with "-" ("--sort -created_at"), which argparse would
# otherwise take for an option of their own.
DASH_VALUE_OPTIONS = ("--sort", "--filter", "--unset")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral", description="Ingest datasets for machine learning: upload, catalog, "
                                   "preprocess.")
    parser.add_argument("--catalog-addr", help=f"catalog host:port (env "
                        f"{addresses.CATALOG_ADDR_ENV}, {addresses.DEFAULT_CATALOG_ADDR})")
    parser.add_argument("--upload-addr", help=f"upload host:port (env "
                        f"{addresses.UPLOAD_ADDR_ENV}, {addresses.DEFAULT_UPLOAD_ADDR})")
    parser.add_argument("--preprocess-addr", help=f"preprocess host:port (env "
                        f"{addresses.PREPROCESS_ADDR_ENV}, {addresses.DEFAULT_PREPROCESS_ADDR})")
    parser.add_argument("--project", help="project to act in, for instance-wide API keys "
                        "(env CORRAL_PROJECT; default: the key's own, or 'default')")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def _attach_dash_values(argv: Sequence[str]) -> list[str]:
    """["--sort", "-size"] -> ["--sort=-size"]."""
    joined: list[str] = []
    values = iter(argv)
    for arg in values:
        if arg in DASH_VALUE_OPTIONS:
            value = next(values, None)
            joined.append(arg if value is None else f"{arg}={value}")
        else:
            joined.append(arg)
    return joined


# What gRPC says when TLS fails on either side: a handshake or name check failing, or a
# TLS server closing a plaintext (or certificate-less mTLS) connection at once.
_TLS_SIGNS = ("handshake", "hostname verification", "ssl", "socket closed")


def _unavailable_hint(message: str) -> str:
    if any(sign in message.lower() for sign in _TLS_SIGNS):
        return ("if the services use TLS, set CORRAL_TLS_CA to the CA that signed their "
                "certificates (and for mTLS CORRAL_TLS_CLIENT_CERT and CORRAL_TLS_CLIENT_KEY); "
                "CORRAL_TLS_SERVER_NAME when the certificate names another host")
    return "is `corral up` running, and do CORRAL_*_ADDR point at it?"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_attach_dash_values(sys.argv[1:] if argv is None
                                                         else argv))
    try:
        return args.handler(args)
    except CorralError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        if exc.code == "UNAVAILABLE":
            print(f"hint: {_unavailable_hint(exc.message)}", file=sys.stderr)
        if exc.code == "UNAUTHENTICATED":
            print("hint: set CORRAL_API_KEY (or CORRAL_API_KEY_FILE); next to `corral up` the "
                  "key is read from <data dir>/keys/admin.key", file=sys.stderr)
        return 1
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            # Output piped into `head` and the like: not an error worth reporting.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
