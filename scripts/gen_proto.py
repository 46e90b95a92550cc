"""Generate the Python stubs in plugin/coprocess/ from proto/*.proto.

protoc writes flat absolute imports (``import coprocess_common_pb2``); they are
rewritten to package-relative ones so the stubs live inside ``plugin`` without
touching sys.path. Run with ``--out DIR`` to generate elsewhere (the drift test).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "plugin" / "coprocess"

_FLAT_IMPORT = re.compile(r"^import (coprocess_\w+_pb2) as ", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # imported lazily: a dev-only dependency

    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted([*out.glob("coprocess_*_pb2*.py"), *out.glob("coprocess_*_pb2.pyi")]):
        text = _FLAT_IMPORT.sub(r"from . import \1 as ", path.read_text())
        path.write_text(text)
        written.append(path)
    # protoc emits an empty *_pb2_grpc.py for files without services; keep only the real one.
    for path in written[:]:
        if path.name.endswith("_pb2_grpc.py") and "class " not in path.read_text():
            path.unlink()
            written.remove(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(args.out.parent) if args.out == DEFAULT_OUT else path, file=sys.stderr)


if __name__ == "__main__":
    main()
