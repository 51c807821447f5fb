"""corral preprocess --dataset NAME: a private preprocess worker for one dataset."""

from __future__ import annotations

import argparse

from corral.cli.common import open_client, warn


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess", help="run a private preprocess worker for one dataset until stopped",
        description="Runs the preprocess service (python -m services.preprocess) in this "
                    "process, serving only DATASET's items while its preprocessing mode is "
                    "private (corral datasets set NAME --preprocessing private), in the "
                    "consumer group preprocess:dataset:<id>: run it several times to share "
                    "the work. It reads blobs like the other services (CORRAL_DATA_DIR, "
                    "CORRAL_BLOB_STORE, ...) and reaches the catalog at --catalog-addr / "
                    "CORRAL_CATALOG_ADDR. Other settings come from the "
                    "CORRAL_PREPROCESS_* variables (python -m services.preprocess --help). "
                    "Ctrl-C or SIGTERM stops it gracefully.")
    parser.add_argument("--dataset", required=True, help="dataset name or id")
    parser.add_argument("--addr", default="127.0.0.1:0",
                        help="where its PreprocessService (GetStats) listens (127.0.0.1:0: a "
                             "free port, printed in the log line 'listening')")
    parser.add_argument("--data-dir", help="data directory of the embedded default "
                                           "(CORRAL_DATA_DIR)")
    parser.set_defaults(handler=run_private_worker)


def run_private_worker(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        dataset = client.get_dataset(args.dataset)
    if dataset["preprocessing"] != "private":
        warn(f"warning: dataset {dataset['name']} is in {dataset['preprocessing']} "
             "preprocessing mode; this worker gets its items once it is private "
             f"(corral datasets set {dataset['name']} --preprocessing private)")
    from services.preprocess.__main__ import main as preprocess_main

    argv = ["--dataset", dataset["id"], "--addr", args.addr,
            "--catalog-addr", client.catalog_addr]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    preprocess_main(argv)
    return 0
