"""Print a JSON description of every coprocess message and service compiled from a proto directory.

Run in its own process (the gateway's stubs and ours define the same names and cannot share
one descriptor pool): ``python -m tests.support.describe_protos PROTO_DIR``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def describe(proto_dir: Path) -> dict:
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        protos = sorted(p.name for p in proto_dir.glob("*.proto"))
        if protoc.main(["protoc", f"-I{proto_dir}", f"--descriptor_set_out={out}", *protos]) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    messages: dict[str, list] = {}
    enums: dict[str, list] = {}
    services: dict[str, list] = {}

    def walk(prefix: str, message) -> None:
        name = f"{prefix}.{message.name}"
        messages[name] = sorted(
            (f.number, f.name, f.type, f.label, f.type_name) for f in message.field
        )
        for nested in message.nested_type:
            walk(name, nested)

    for file in files.file:
        prefix = file.package
        for message in file.message_type:
            walk(prefix, message)
        for enum in file.enum_type:
            enums[f"{prefix}.{enum.name}"] = sorted((v.number, v.name) for v in enum.value)
        for service in file.service:
            services[f"{prefix}.{service.name}"] = sorted(
                (m.name, m.input_type, m.output_type) for m in service.method
            )
    return {"messages": messages, "enums": enums, "services": services}


if __name__ == "__main__":
    print(json.dumps(describe(Path(sys.argv[1]))))
