"""corral datasets create|list|set|delete"""

from __future__ import annotations

import argparse

from corral.cli.common import open_client, print_json, print_table
from corral.client.convert import PREPROCESSING_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("datasets", help="create, list, change and delete datasets")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a dataset")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--json", action="store_true", help="print the dataset as JSON")
    create.set_defaults(handler=create_dataset)

    listing = actions.add_parser("list", help="list datasets")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=list_datasets)

    change = actions.add_parser(
        "set", help="change a dataset's settings",
        description="--preprocessing: who preprocesses the dataset's new items: global (the "
                    "shared preprocess pool), private (only `corral preprocess --dataset NAME` "
                    "workers) or off (nobody). Applies to every item not yet handed to a "
                    "worker.")
    change.add_argument("name", help="dataset name or id")
    change.add_argument("--preprocessing", choices=PREPROCESSING_MODES, required=True)
    change.add_argument("--json", action="store_true", help="print the dataset as JSON")
    change.set_defaults(handler=set_dataset)

    delete = actions.add_parser("delete", help="delete a dataset with all its items")
    delete.add_argument("name", help="dataset name or id")
    delete.set_defaults(handler=delete_dataset)


def create_dataset(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        dataset = client.create_dataset(args.name, description=args.description)
    if args.json:
        print_json(dataset)
    else:
        print(f"created dataset {dataset['name']} ({dataset['id']})")
    return 0


def list_datasets(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        datasets = list(client.list_datasets())
    if args.json:
        print_json(datasets)
        return 0
    rows = [[d["name"], str(d["item_count"]), d["preprocessing"], d["id"], d["create_time"] or "",
             d["description"]] for d in datasets]
    print_table(["NAME", "ITEMS", "PREPROCESSING", "ID", "CREATED", "DESCRIPTION"], rows,
                right_aligned=[1])
    return 0


def set_dataset(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        dataset = client.set_dataset_preprocessing(args.name, args.preprocessing)
    if args.json:
        print_json(dataset)
    else:
        print(f"dataset {dataset['name']} ({dataset['id']}): preprocessing "
              f"{dataset['preprocessing']}")
    return 0


def delete_dataset(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        dataset = client.get_dataset(args.name)
        deleted = client.delete_dataset(dataset)
    print(f"deleted dataset {dataset['name']} ({deleted} items)")
    return 0
