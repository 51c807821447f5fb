"""`python -m corral.healthcheck HOST:PORT` exits 0 when the service there is SERVING.

Used by container health checks, where no grpc_health_probe binary is available."""

from __future__ import annotations

import sys

from corral.launcher import wait_serving


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m corral.healthcheck HOST:PORT", file=sys.stderr)
        return 2
    try:
        wait_serving(args[0], timeout=3.0)
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
