"""corral worker --trigger NAME --function package.module:func"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from corral.cli.common import open_client


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a Python function for every event of a trigger")
    parser.add_argument("--trigger", required=True, help="the trigger's name")
    parser.add_argument("--function", required=True,
                        help="package.module:func, called as func(item, ctx); sync or async "
                        "(the current directory is importable)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="functions running at once (default 4)")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="tries per item before its run is recorded as failed (default 3)")
    parser.add_argument("--lease-seconds", type=int, default=60,
                        help="how long an event stays leased to this worker; extended while "
                        "the function runs; a dead worker's events come back after it "
                        "(default 60)")
    parser.add_argument("--backoff-seconds", type=float, default=0.5,
                        help="first retry delay, doubled per attempt (default 0.5)")
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from corral.worker import TriggerWorker, load_function

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    function = load_function(args.function)
    with open_client(args) as client:
        worker = TriggerWorker(client, args.trigger, function, concurrency=args.concurrency,
                               max_attempts=args.max_attempts,
                               lease_seconds=args.lease_seconds,
                               backoff_seconds=args.backoff_seconds)
        client.get_trigger(args.trigger)  # NOT_FOUND now rather than later
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        print(f"worker for trigger {args.trigger} running {args.function} "
              f"(concurrency {args.concurrency})", file=sys.stderr, flush=True)
        worker.run()
    return 0
