"""corral ls | show | download"""

from __future__ import annotations

import argparse
import mimetypes
import sys
from pathlib import Path

from corral.cli.common import open_client, print_json, remote_dir_arg, resolve_item
from corral.client import ItemDict

ITEM_HELP = "an item id, or DATASET:/path/to/file"
FILTER_HELP = (
    "only items matching COND (repeat: all must match): FIELD OP VALUE with OP one of "
    "= != > >= < <= ~ (glob: * ? **), FIELD? (exists), !FIELD? (absent); VALUE is JSON when "
    "it parses as JSON, a string otherwise; =[a,b] is 'in'; 'A | B' matches either. FIELD: "
    "name dir filename type mimetype size created_at updated_at metadata.user.KEY "
    "metadata.system.KEY. Example: --filter metadata.user.camera=3 --filter 'name~*.jpg'")
THUMBNAIL_EXTENSIONS = {"image/jpeg": ".jpg", "image/webp": ".webp", "image/png": ".png"}


def register(subparsers: argparse._SubParsersAction) -> None:
    ls = subparsers.add_parser("ls", help="list a dataset's folders and files")
    ls.add_argument("dataset", help="dataset name or id")
    ls.add_argument("--dir", type=remote_dir_arg, default="/", help="folder to list (/)")
    ls.add_argument("-r", "--recursive", action="store_true",
                    help="everything below the folder (implied by --filter)")
    ls.add_argument("--filter", action="append", default=[], metavar="COND",
                    help=FILTER_HELP)
    ls.add_argument("--sort", action="append", default=[], metavar="[-]FIELD",
                    help="order by a filter field, '-' for descending (repeat for ties); "
                         "filename by default")
    ls.add_argument("--count", action="store_true",
                    help="print how many items match instead of listing them")
    ls.add_argument("--json", action="store_true", help="print the items as a JSON array")
    ls.set_defaults(handler=list_items)

    show = subparsers.add_parser("show", help="print an item as JSON")
    show.add_argument("item", help=ITEM_HELP)
    show.set_defaults(handler=show_item)

    download = subparsers.add_parser("download", help="download an item or its thumbnail")
    download.add_argument("item", help=ITEM_HELP)
    download.add_argument("-o", "--output",
                          help="file or existing folder to write to, '-' for stdout "
                               "(default: the item's name in the current folder)")
    download.add_argument("--thumbnail", action="store_true",
                          help="the thumbnail made by preprocessing instead of the file")
    download.set_defaults(handler=download_item)


def list_items(args: argparse.Namespace) -> int:
    recursive = args.recursive or bool(args.filter)
    item_filter = args.filter or None
    with open_client(args) as client:
        if args.count:
            count = client.count_items(args.dataset, args.dir, recursive, filter=item_filter)
            print_json({"count": count}) if args.json else print(count)
            return 0
        items = list(client.list_items(args.dataset, args.dir, recursive=recursive,
                                       filter=item_filter, order_by=args.sort or None))
    if args.json:
        print_json(items)
        return 0
    for item in items:
        shown = item["filename"] if recursive else item["name"]
        if item["type"] == "dir":
            print(f"{item['id']}  {'-':>12}  {shown}/")
        elif item["type"] == "link":
            print(f"{item['id']}  {'link':>12}  {shown} -> {item['link']['url']}")
        else:
            print(f"{item['id']}  {item['size']:>12}  {shown}")
    return 0


def show_item(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        print_json(resolve_item(client, args.item))
    return 0


def download_item(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        item = resolve_item(client, args.item)
        expected = None if args.thumbnail else item["sha256"]
        if args.output == "-":
            client.download(item["id"], sys.stdout.buffer, thumbnail=args.thumbnail,
                            expected_sha256=expected)
            sys.stdout.flush()
            return 0
        target = _target_path(item, args.output, args.thumbnail)
        result = client.download(item["id"], target, thumbnail=args.thumbnail,
                                 expected_sha256=expected)
    print(f"{result.path} ({result.size} bytes)")
    return 0


def _target_path(item: ItemDict, output: str | None, thumbnail: bool) -> Path:
    default_name = _thumbnail_name(item) if thumbnail else item["name"]
    if output is None:
        return Path(default_name)
    target = Path(output)
    return target / default_name if target.is_dir() else target


def _thumbnail_name(item: ItemDict) -> str:
    """"cat.png" -> "cat.thumb.jpg" (or .webp: the extension follows the thumbnail's type)."""
    thumbnail = item["metadata"]["system"].get("thumbnail") or {}
    mimetype = thumbnail.get("mimetype", "image/jpeg") if isinstance(thumbnail, dict) else ""
    extension = THUMBNAIL_EXTENSIONS.get(mimetype) or mimetypes.guess_extension(mimetype) or ""
    return f"{Path(item['name']).stem}.thumb{extension}"
