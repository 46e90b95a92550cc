"""proto/ is Tyk's coprocess protocol field for field, and the committed stubs match it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.coprocess import Object, SessionState
from tests.support.describe_protos import describe

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_are_what_proto_generates(tmp_path):
    subprocess.run([sys.executable, "scripts/gen_proto.py", "--out", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.py*")}
    committed = {p.name: p.read_text() for p in (ROOT / "plugin" / "coprocess").glob("coprocess_*.py*")}
    assert generated == committed, "stubs drifted from proto/: run python scripts/gen_proto.py"


def test_session_state_has_the_gateway_s_34_fields():
    fields = {f.number: f.name for f in SessionState.DESCRIPTOR.fields}
    assert len(fields) == 34
    assert fields[27] == "id_extractor_deadline"
    assert fields[29] == "apply_policies"
    assert fields[32] == "key_id"
    assert fields[34] == "post_expiry_grace_period"


def test_object_fields_and_service_names_match_the_contract():
    assert [(f.number, f.name) for f in Object.DESCRIPTOR.fields] == [
        (1, "hook_type"), (2, "hook_name"), (3, "request"), (4, "session"),
        (5, "metadata"), (6, "spec"), (7, "response")]
    service = describe(ROOT / "proto")["services"]["coprocess.Dispatcher"]
    assert [list(m) for m in service] == [["Dispatch", ".coprocess.Object", ".coprocess.Object"],
                                         ["DispatchEvent", ".coprocess.Event", ".coprocess.EventReply"]]


def test_negative_response_code_survives_a_round_trip():
    obj = Object()
    obj.request.return_overrides.response_code = -1
    assert Object.FromString(obj.SerializeToString()).request.return_overrides.response_code == -1


@pytest.mark.skipif(not os.environ.get("TYK_PROTO_DIR"), reason="set TYK_PROTO_DIR to the gateway's coprocess/proto")
def test_proto_dir_is_wire_identical_to_the_gateway_s():
    theirs = json.loads(subprocess.run(
        [sys.executable, "-m", "tests.support.describe_protos", os.environ["TYK_PROTO_DIR"]],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    ours = json.loads(json.dumps(describe(ROOT / "proto")))
    assert ours == theirs
