"""The walkthrough's printed commands: paste-ready, and never showing a real tenant's client secret."""

from __future__ import annotations

import json
import re
import subprocess

from plugin.devstack.stack import Stack

REAL_SECRET = "RealTenantClientS3cret"


def data_sent_by(command: str, environment: dict[str, str]) -> dict[str, str]:
    """The JSON body the printed token curl sends, as the shell expands it."""
    quoted = re.search(r"--data ('.*')", command)
    assert quoted is not None
    expanded = subprocess.run(["bash", "-c", f"printf %s {quoted.group(1)}"], env=environment, capture_output=True,
                              text=True, check=True).stdout
    return json.loads(expanded)


def test_a_real_tenants_client_secret_is_read_from_the_shell_not_printed(tmp_path):
    stack = Stack(workdir=tmp_path, auth0_domain="dev-x.us.auth0.com", audience="https://api.example.com",
                  client_id="real-client", client_secret=REAL_SECRET, with_plugin=False)
    printed = "\n".join(stack._token_steps())
    assert REAL_SECRET not in printed and "$AUTH0_CLIENT_SECRET" in printed
    sent = data_sent_by(printed, {"AUTH0_CLIENT_SECRET": REAL_SECRET, "PATH": "/usr/bin:/bin"})
    assert sent["client_secret"] == REAL_SECRET and sent["client_id"] == "real-client"


def test_the_stand_ins_throwaway_secret_is_printed_ready_to_paste(tmp_path):
    stack = Stack(workdir=tmp_path, client_secret="throwaway", with_plugin=False)
    stack.idp = type("Idp", (), {"token_url": "http://127.0.0.1:1/oauth/token"})()  # its URL, without starting it
    printed = "\n".join(stack._token_steps())
    assert data_sent_by(printed, {"PATH": "/usr/bin:/bin"})["client_secret"] == "throwaway"


def test_the_banner_lists_every_api_the_gateway_serves(tmp_path):
    stack = Stack(workdir=tmp_path, auth0_domain="dev-x.us.auth0.com", with_plugin=False)
    stack.gateway = type("Gateway", (), {"url": "http://127.0.0.1:8080", "secret": "s", "log_path": "gateway.log"})()
    stack.upstream = type("Upstream", (), {"url": "http://127.0.0.1:8081/"})()
    stack.redis = type("Redis", (), {"url": "redis://127.0.0.1:6380/0"})()
    stack.ports = {"plugin": 5555}
    listed = re.findall(r"^  (/\S+/)  ", stack.summary(), re.MULTILINE)
    served = [api["proxy"]["listen_path"] for api in stack.apis()]
    assert sorted(listed) == sorted(served)


def test_without_a_gateway_the_printed_check_derives_the_session_key_the_gateway_would(tmp_path):
    stack = Stack(workdir=tmp_path, auth0_domain="dev-x.us.auth0.com", with_plugin=False)
    stack.upstream = type("Upstream", (), {"url": "http://127.0.0.1:8081/"})()
    stack.ports = {"plugin": 5555}
    check = next(line for line in stack.plugin_only_summary().splitlines() if line.startswith("tyk-auth0-plugin check"))
    plugin_api = next(api for api in stack.apis() if api["proxy"]["listen_path"] == "/auth0-plugin/")
    assert f"--org-id {plugin_api['org_id']} --api-id {plugin_api['api_id']} " in check
