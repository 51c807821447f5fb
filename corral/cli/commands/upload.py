"""corral upload PATH... --dataset NAME"""

from __future__ import annotations

import argparse
import json
import sys

from corral.cli.common import (
    json_object_arg,
    open_client,
    positive_int_arg,
    remote_dir_arg,
    warn,
)
from corral.cli.progress import UploadProgressBars


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload", help="upload files and folders",
        description="Uploads files and folders, several at a time. A folder keeps its own "
                    "name, like `cp -r`: `corral upload photos --remote-path /in` creates "
                    "/in/photos/...")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files and folders")
    parser.add_argument("--dataset", required=True, help="dataset name or id")
    parser.add_argument("--remote-path", type=remote_dir_arg, default="/",
                        help="folder in the dataset to upload into (/)")
    parser.add_argument("--metadata", type=json_object_arg, default=None,
                        help="user metadata for every file, a JSON object")
    parser.add_argument("--description", default="", help="description of every file")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_const", dest="on_exists",
                          const="overwrite", help="replace files that already exist")
    existing.add_argument("--fail-on-exists", action="store_const", dest="on_exists",
                          const="fail", help="count files that already exist as failures")
    parser.set_defaults(on_exists="skip")
    parser.add_argument("--workers", type=positive_int_arg, default=16,
                        help="files over 4 MiB in flight at once (16); smaller ones go "
                             "many per stream")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true",
                        help="print the summary with every item as JSON")
    parser.set_defaults(handler=upload)


def upload(args: argparse.Namespace) -> int:
    bars = UploadProgressBars(enabled=not args.quiet and sys.stderr.isatty())
    try:
        with open_client(args) as client:
            summary = client.upload_paths(
                args.paths, args.dataset, remote_dir=args.remote_path, metadata=args.metadata,
                description=args.description, on_exists=args.on_exists, workers=args.workers,
                progress=bars)
    finally:
        bars.close()
    for failure in summary.failures:
        warn(f"failed: {failure.local_path} -> {failure.filename}: {failure.reason}")
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(summary)
    return 0 if summary.ok else 1
