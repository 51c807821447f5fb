"""`python -m corral.healthcheck HOST:PORT` exits 0 when the service there is SERVING.

Used by container health checks, where no grpc_health_probe binary is available. It runs with
the service's own environment, so it speaks TLS with the service's CORRAL_TLS_CA (and, for
mTLS, CORRAL_TLS_CLIENT_CERT/KEY) like the service's own calls to the others do; the service's
certificate must then name the address checked (127.0.0.1 or localhost), or
CORRAL_TLS_SERVER_NAME one of its names."""

from __future__ import annotations

import os
import sys

from corral.credentials import TLS_CA_ENV, TlsFiles
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
        if os.environ.get("CORRAL_TLS_CERT") and not TlsFiles.from_env().enabled:
            print(f"hint: the service serves TLS; set {TLS_CA_ENV} for the health check",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
