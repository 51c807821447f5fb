"""Writes the keys docker-compose.yml needs into .env beside it (docker compose reads that
file by itself): CORRAL_SERVICE_KEY, shared by the three services, and
CORRAL_BOOTSTRAP_ADMIN_KEY, the first instance admin key, which the CLI then uses.

    python scripts/compose_env.py            # once; refuses to replace an existing .env
    export CORRAL_API_KEY=$(sed -n 's/^CORRAL_BOOTSTRAP_ADMIN_KEY=//p' .env)

The file is created with mode 0600 and the keys are never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from corral.credentials import new_api_key  # noqa: E402 - after the path set-up above


def compose_env() -> str:
    return (f"CORRAL_SERVICE_KEY={new_api_key()[1]}\n"
            f"CORRAL_BOOTSTRAP_ADMIN_KEY={new_api_key()[1]}\n")


def write_env(path: Path) -> None:
    # O_EXCL: never overwrite keys the running services already use.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(compose_env())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / ".env",
                        help="where to write (default: .env beside docker-compose.yml)")
    args = parser.parse_args(argv)
    try:
        write_env(args.output)
    except FileExistsError:
        print(f"{args.output} exists; keeping its keys (delete it to make new ones)",
              file=sys.stderr)
        return 1
    print(f"wrote {args.output} (mode 0600): CORRAL_SERVICE_KEY, CORRAL_BOOTSTRAP_ADMIN_KEY")
    return 0


if __name__ == "__main__":
    sys.exit(main())
