"""Regenerates the Python stubs under corral/<area>/v1/ from protos/ (one command, no rewriting).

The proto path equals the Python path, so `-I protos` with output at the repo root yields
`from corral.catalog.v1 import resources_pb2`. `--check` fails if the committed stubs differ.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out_dir: Path) -> list[Path]:
    sources = sorted(PROTOS.rglob("*.proto"))
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}",
        f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}",
        *[str(s.relative_to(PROTOS)) for s in sources],
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS)
    generated = sorted(p.relative_to(out_dir) for p in out_dir.rglob("*_pb2*.py*"))
    # Packages need __init__.py so that the stubs import as corral.<area>.v1.
    for rel in {p.parent for p in generated}:
        for parent in [rel, *rel.parents][:-1]:
            (out_dir / parent / "__init__.py").touch()
    return generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs drift")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generated = generate(out)
        stale = [p for p in generated
                 if not (ROOT / p).exists() or not filecmp.cmp(out / p, ROOT / p, shallow=False)]
        if args.check:
            for p in stale:
                print(f"stub out of date: {p} (run: python scripts/gen_protos.py)", file=sys.stderr)
            return 1 if stale else 0
        for p in generated:
            (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / p, ROOT / p)
            for parent in [p.parent, *p.parent.parents][:-1]:
                (ROOT / parent / "__init__.py").touch()
        print(f"generated {len(generated)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
