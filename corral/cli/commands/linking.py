"""corral link | clone | import-csv"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tqdm import tqdm

from corral.cli.common import (
    json_object_arg,
    open_client,
    print_json,
    remote_dir_arg,
    resolve_item,
)
from corral.client.linking import ImportRow
from corral.errors import CorralError

REPORT_COLUMNS = ("row", "line", "id", "action", "outcome", "item_id", "filename", "error")


def register(subparsers: argparse._SubParsersAction) -> None:
    link = subparsers.add_parser(
        "link", help="create link items: references to URLs, fetched through corral")
    link.add_argument("urls", nargs="+", metavar="URL", help="http or https URLs")
    link.add_argument("--dataset", required=True, help="dataset name or id")
    link.add_argument("--remote-path", type=remote_dir_arg, default="/",
                      help="folder in the dataset (/)")
    link.add_argument("--name", help="item name (one URL only; default: the URL's file name)")
    link.add_argument("--mimetype", default="image/jpeg",
                      help="declared type: image/jpeg (default), image, video, ...")
    link.add_argument("--metadata", type=json_object_arg, help="user metadata (JSON object)")
    link.add_argument("--json", action="store_true", help="print the items as JSON")
    link.set_defaults(handler=create_links)

    clone = subparsers.add_parser(
        "clone", help="clone an item into another folder or dataset without copying bytes")
    clone.add_argument("item", help="an item id, or DATASET:/path/to/file")
    clone.add_argument("--dataset", help="target dataset (default: the item's own)")
    clone.add_argument("--remote-path", type=remote_dir_arg, default="/",
                       help="target folder (/)")
    clone.add_argument("--name", help="the clone's name (default: the item's)")
    clone.add_argument("--metadata", type=json_object_arg,
                       help="the clone's user metadata (default: a copy of the item's)")
    clone.set_defaults(handler=clone_item)

    importer = subparsers.add_parser(
        "import-csv", help="import items from a CSV of URLs or base64 content")
    importer.add_argument("file", type=Path, help="the CSV file; its name (without "
                          "extension) names the folder the items go into")
    importer.add_argument("--dataset", required=True, help="dataset name or id")
    importer.add_argument("--remote-path", type=remote_dir_arg, default="/",
                          help="folder under which the import folder is made (/)")
    importer.add_argument("--report", type=Path,
                          help="write a CSV report, one line per row (default: "
                               "<file>.report.csv)")
    importer.add_argument("--fetch-concurrency", type=int, default=0,
                          help="concurrent fetches for action=upload rows (server default)")
    importer.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    importer.set_defaults(handler=import_csv)


def create_links(args: argparse.Namespace) -> int:
    if args.name and len(args.urls) > 1:
        raise SystemExit("error: --name needs exactly one URL")
    with open_client(args) as client:
        results = client.link_many(args.dataset, args.urls, args.remote_path,
                                   names=[args.name] if args.name else None,
                                   mimetype=args.mimetype, metadata=args.metadata)
    failed = 0
    for url, result in zip(args.urls, results, strict=True):
        if isinstance(result, CorralError):
            failed += 1
            print(f"error: {url}: {result.code}: {result.message}", file=sys.stderr)
        elif not args.json:
            print(f"{result['id']}  {result['filename']}  -> {url}")
    if args.json:
        print_json([r for r in results if not isinstance(r, CorralError)])
    return 1 if failed else 0


def clone_item(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        source = resolve_item(client, args.item)
        clone = client.clone(source["id"], dataset=args.dataset, remote_dir=args.remote_path,
                             name=args.name, metadata=args.metadata)
    print(f"{clone['id']}  {clone['filename']}")
    return 0


def import_csv(args: argparse.Namespace) -> int:
    report_path = args.report or args.file.with_name(args.file.name + ".report.csv")
    bar = tqdm(unit="row", desc=args.file.name, file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet or not sys.stderr.isatty())
    with open_client(args) as client, report_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)

        def on_row(row: ImportRow) -> None:
            item = row.item or {}
            writer.writerow((row.row, row.line, row.id, row.action, row.outcome,
                             item.get("id", ""), item.get("filename", ""),
                             f"{row.error.code}: {row.error.message}" if row.error else ""))
            bar.update(1)
            if row.error is not None:
                bar.set_postfix(failed=row.row, refresh=False)

        try:
            report = client.import_csv(args.file, args.dataset, args.remote_path,
                                       fetch_concurrency=args.fetch_concurrency, on_row=on_row)
        finally:
            bar.close()
    print(f"{report.folder}: {report.rows} rows, created {report.created}, skipped "
          f"{report.skipped}, failed {report.failed} (report: {report_path})")
    for failure in report.failures[:10]:
        print(f"  row {failure.row} (line {failure.line}, ID {failure.id!r}): "
              f"{failure.error.code if failure.error else ''}: "
              f"{failure.error.message if failure.error else ''}", file=sys.stderr)
    if report.failed > 10:
        print(f"  ... and {report.failed - 10} more in {report_path}", file=sys.stderr)
    return 1 if report.failed else 0
