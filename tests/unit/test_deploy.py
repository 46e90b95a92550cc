"""Deployment files: the manifests, unit and image say what the code actually reads and serves.

No container engine or cluster runs here: these checks read the files, validate them against the
Kubernetes schemas when kubernetes-validate is installed, run ``systemd-analyze verify`` when
present, and hold every port, probe path, env var and file reference against the code.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from plugin import config as configlib
from plugin.manifest import load_hook_names

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the Kubernetes manifests")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFEST_HOOK = load_hook_names(ROOT / "manifest.json").auth_check


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def plugin_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["image"].startswith("tyk-auth0-plugin")]


def known_env_names() -> set[str]:
    """Every variable the code reads: config SETTINGS, and TYK_AUTH0_* names the plugin's modules read."""
    names = {s.env for s in configlib.SETTINGS if s.env} | {"TYK_HASH_KEY_FUNCTION"}
    for source in (ROOT / "plugin").glob("*.py"):
        names |= set(re.findall(r'"(TYK_AUTH0_[A-Z0-9_]+)"', source.read_text()))
    return names


def port_of(container: dict[str, Any], name: str) -> int:
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def listen_arg(container: dict[str, Any]) -> str:
    args = container["args"]
    return args[args.index("--listen") + 1]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# -- Kubernetes ---------------------------------------------------------------------------------------------

def test_manifests_validate_against_the_kubernetes_schemas():
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for name in ("deployment.yaml", "gateway-sidecar.yaml"):
        for doc in documents(name):
            validate.validate(doc, validate.latest_version(), strict=True)


def test_deployment_kinds_selectors_and_headless_service():
    docs = documents("deployment.yaml")
    assert sorted(d["kind"] for d in docs) == ["Deployment", "PodDisruptionBudget", "Service"]
    (deployment,) = by_kind(docs, "Deployment")
    (service,) = by_kind(docs, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["clusterIP"] == "None"  # headless: one A record per ready pod
    assert service["metadata"]["name"] == "tyk-auth0-plugin-headless"
    grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    (container,) = plugin_containers(deployment)
    assert grpc["port"] == 5555 and port_of(container, grpc["targetPort"]) == 5555
    assert listen_arg(container) == "tcp://0.0.0.0:5555"
    # the address the comment tells operators to put in tyk.conf names this service and port
    text = (DEPLOY / "kubernetes" / "deployment.yaml").read_text()
    assert '"coprocess_grpc_server": "dns:///tyk-auth0-plugin-headless:5555"' in text
    assert '"grpc_round_robin_load_balancing": true' in text


@pytest.mark.parametrize("name", ["deployment.yaml", "gateway-sidecar.yaml"])
def test_probes_hit_the_metrics_server_the_container_starts(name):
    from plugin.metrics import parse_listen

    (deployment,) = by_kind(documents(name), "Deployment")
    for container in plugin_containers(deployment):
        metrics_port = port_of(container, "metrics")
        host, port = parse_listen(env_of(container)["TYK_AUTH0_METRICS_LISTEN"])
        assert (host, port) == ("0.0.0.0", metrics_port)  # the kubelet probes the pod IP
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", ["deployment.yaml", "gateway-sidecar.yaml"])
def test_every_env_var_the_manifests_set_is_read_by_the_plugin(name):
    known = known_env_names()
    (deployment,) = by_kind(documents(name), "Deployment")
    for container in plugin_containers(deployment):
        unknown = set(env_of(container)) - known
        assert not unknown, f"{name}: {container['name']} sets {sorted(unknown)}, which nothing reads"


def test_the_sidecar_gateway_calls_the_plugin_on_localhost_with_the_manifest_hook():
    docs = documents("gateway-sidecar.yaml")
    (config_map,) = by_kind(docs, "ConfigMap")
    (deployment,) = by_kind(docs, "Deployment")
    tyk_conf = json.loads(config_map["data"]["tyk.conf"])
    (plugin,) = plugin_containers(deployment)
    assert tyk_conf["coprocess_options"] == {"enable_coprocess": True,
                                             "coprocess_grpc_server": listen_arg(plugin)}
    assert listen_arg(plugin) == "tcp://127.0.0.1:5555"
    api = json.loads(config_map["data"]["auth0-plugin.json"])
    assert api["custom_middleware"]["auth_check"]["name"] == MANIFEST_HOOK
    assert api["custom_middleware"]["driver"] == "grpc" and api["enable_coprocess_auth"] and not api["use_keyless"]
    parsed = configlib.parse_config_data(json.dumps(api["config_data"]), environ={})
    policy = json.loads(config_map["data"]["auth0-policy.json"])
    assert policy["id"] in parsed.default_policies and policy["org_id"] == api["org_id"]
    assert api["api_id"] in policy["access_rights"]
    gateway = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c is not plugin)
    mounts = {m["mountPath"]: m["subPath"] for m in gateway["volumeMounts"]}
    assert mounts["/opt/tyk-gateway/tyk.conf"] == "tyk.conf"
    assert set(mounts.values()) <= set(config_map["data"])
    assert mounts[f"{tyk_conf['app_path']}/auth0-plugin.json"] == "auth0-plugin.json"
    assert mounts[f"{tyk_conf['policies']['policy_path']}/auth0-policy.json"] == "auth0-policy.json"


def test_env_vars_of_serve_change_what_serve_runs_with(monkeypatch):
    """The TYK_AUTH0_* variables the files set for serve really reach serve's settings."""
    from plugin.cli import build_parser

    files = [(DEPLOY / "kubernetes" / n).read_text() for n in ("deployment.yaml", "gateway-sidecar.yaml")]
    files += [(DEPLOY / "systemd" / "tyk-auth0-plugin.service").read_text(), (DEPLOY / "Dockerfile").read_text()]
    names = sorted(set(re.findall(r"\b(TYK_AUTH0_[A-Z0-9_]+)", "\n".join(files))) - {"TYK_AUTH0_MANIFEST"})
    for name in list(__import__("os").environ):
        if name.startswith("TYK_AUTH0_"):
            monkeypatch.delenv(name)
    baseline = vars(build_parser().parse_args(["serve"]))
    unwired = []
    for name in names:
        value = {"TYK_AUTH0_LISTEN": "tcp://0.0.0.0:5999", "TYK_AUTH0_LOG_JSON": "1", "TYK_AUTH0_LOG_LEVEL": "DEBUG",
                 "TYK_AUTH0_THREADS": "7", "TYK_AUTH0_METRICS_LISTEN": "0.0.0.0:9999", "TYK_AUTH0_WORKERS": "3",
                 "TYK_AUTH0_PIN_WORKERS": "1"}.get(name, "x")
        monkeypatch.setenv(name, value)
        if vars(build_parser().parse_args(["serve"])) == baseline:
            unwired.append(name)
        monkeypatch.delenv(name)
    assert not unwired, f"serve ignores {unwired}"


def test_manifest_path_env_is_read():
    from plugin.manifest import manifest_path

    assert str(manifest_path(None)).endswith("manifest.json")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "TYK_AUTH0_MANIFEST=/etc/tyk-auth0-plugin/manifest.json" in dockerfile


# -- systemd ------------------------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "tyk-auth0-plugin.service"


def unit_settings() -> list[tuple[str, str]]:
    pairs = [line.split("=", 1) for line in UNIT.read_text().splitlines()
             if "=" in line and not line.startswith(("#", ";"))]
    return [(key, value) for key, value in pairs]


def test_unit_runs_serve_with_known_environment():
    settings = unit_settings()
    exec_start = shlex.split(dict(settings)["ExecStart"])
    assert exec_start[0].endswith("/tyk-auth0-plugin") and exec_start[1] == "serve"
    environment = [value.split("=", 1)[0] for key, value in settings if key == "Environment"]
    assert set(environment) <= known_env_names()
    assert dict(settings)["User"] != "root" and dict(settings)["KillSignal"] == "SIGTERM"


def test_systemd_analyze_verify_finds_nothing_but_the_uninstalled_binary(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable: No such file or directory" not in line]
    if any("Failed to" in p and ("bus" in p.lower() or "manager" in p.lower()) for p in problems):
        pytest.skip(f"systemd-analyze cannot run here: {problems[0]}")
    assert not problems, "\n".join(problems)


# -- Dockerfile ---------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_copies_files_that_exist_and_runs_the_console_script():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    for kind, argument in instructions:
        if kind == "COPY" and not argument.startswith("--from"):
            *sources, _ = argument.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository (build context is the root)"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])
    assert entrypoint == [next(iter(scripts))]
    cmd = json.loads(dict(instructions)["CMD"])
    assert cmd == ["serve", "--listen", "tcp://0.0.0.0:5555"]
    from plugin.cli import build_parser
    from plugin.server import grpc_address

    args = build_parser().parse_args(cmd)
    assert grpc_address(args.listen) == "0.0.0.0:5555"
    user = dict(instructions)["USER"].split(":")[0]
    assert user not in ("root", "0")
    exposed = {int(p) for kind, arg in instructions if kind == "EXPOSE" for p in arg.split()}
    assert exposed == {5555, 9464}


def test_dockerfile_env_names_are_read_and_the_manifest_is_where_env_says():
    instructions = dockerfile_instructions()
    env = {}
    for kind, argument in instructions:
        if kind == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(argument)))
    plugin_env = {k for k in env if not k.startswith(("PYTHON", "PIP_"))}
    assert plugin_env <= known_env_names()
    copies = {arg.split()[-1]: arg.split()[0] for kind, arg in instructions if kind == "COPY"}
    assert copies[env["TYK_AUTH0_MANIFEST"]] == "manifest.json"


def test_the_package_declares_every_third_party_module_it_imports():
    """The image installs only pyproject's dependencies: an undeclared import fails at start-up."""
    declared = {re.split(r"[<>=\[ ]", d)[0].lower().replace("-", "_")
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    module_to_dist = {"jwt": "pyjwt", "grpc": "grpcio", "grpc_health": "grpcio_health_checking", "google": "protobuf",
                      "yaml": "pyyaml"}
    stdlib = set(__import__("sys").stdlib_module_names)
    missing = set()
    for source in (ROOT / "plugin").rglob("*.py"):
        if "devstack" in source.parts:
            continue  # the local walkthrough is not part of the served image
        tree = ast.parse(source.read_text())
        modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names}
        modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        for module in modules:
            if module in stdlib or module in ("plugin", "__future__"):
                continue
            if module_to_dist.get(module, module).lower() not in declared:
                missing.add(f"{module} ({source.relative_to(ROOT)})")
    assert not missing, f"imported but not in pyproject dependencies: {sorted(missing)}"


# -- Prometheus alerting rules ------------------------------------------------------------------------------

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE_JOB = "tyk-auth0-plugin"
TARGET_LABELS = {"job", "instance"}  # Prometheus adds these to every series it scrapes
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "absent", "by", "without", "on",
                "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def exported_series() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Series names with their label names, and each label's values, as a live registry with every
    source bound exposes them; plus ``up``, which Prometheus itself records for each target."""
    from prometheus_client.parser import text_string_to_metric_families

    from plugin.metrics import HOOKS, OUTCOMES, Metrics

    metrics = Metrics()
    metrics.bind(token_cache=lambda: (1, 1), jwks_fetches=lambda: (1, 1),
                 jwks_ages=lambda: {"https://tenant.example/.well-known/jwks.json": 1.0}, ready=lambda: True)
    metrics.request("pre", "hook_error")
    body, _ = metrics.exposition()
    labels: dict[str, set[str]] = {"up": set()}
    values: dict[str, set[str]] = {"outcome": set(OUTCOMES), "hook": set(HOOKS)}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
            for name, value in sample.labels.items():
                if name not in ("outcome", "hook", "url", "le"):
                    values.setdefault(name, set()).add(value)
    return labels, values


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each metric an expression reads, with its label matchers (name, operator, value)."""
    found = [(name, MATCHER.findall(body)) for name, body in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)]
    bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"', " ", GROUPING.sub(" ", expr))
    found += [(name, []) for name in re.findall(r"[A-Za-z_:][\w:]*", bare)
              if name not in PROMQL_WORDS and name not in {n for n, _ in found}]
    return found


def test_the_alert_rules_read_only_metrics_and_labels_the_plugin_exports():
    labels, values = exported_series()
    assert "tyk_auth0_requests_total" in labels and "tyk_auth0_jwks_age_seconds" in labels  # the scrape worked
    for rule in alert_rules():
        for metric, matchers in selectors(rule["expr"]):
            assert metric in labels, f"{rule['alert']}: {metric} is not exported (nor a PromQL word)"
            for label, op, value in matchers:
                assert label in labels[metric] | TARGET_LABELS, f"{rule['alert']}: {metric} has no label {label}"
                if label not in values:
                    continue
                alternatives = value.split("|") if op in ("=~", "!~") else [value]
                for alternative in alternatives:
                    assert re.fullmatch(r"\w+", alternative), f"{rule['alert']}: {label} matches a pattern, not values"
                    assert alternative in values[label], f"{rule['alert']}: {label}={alternative!r} never exported"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_hold():
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+m", rule["for"]), f"{rule['alert']}: fires on a single evaluation"


def test_alert_templates_use_only_labels_the_expression_keeps():
    labels, _ = exported_series()
    for rule in alert_rules():
        grouped = [set(map(str.strip, g.split(","))) for g in GROUPING.findall(rule["expr"])]
        kept = set.intersection(*grouped) if grouped else \
            set.union(*(labels[m] for m, _ in selectors(rule["expr"]))) | TARGET_LABELS
        used = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        assert used <= kept, f"{rule['alert']}: {sorted(used - kept)} are not on the alert"


def test_refusal_alerts_hold_longer_than_their_rate_window():
    """A lone refusal lifts a rate for one window only: holding longer keeps it from firing."""
    for rule in alert_rules():
        windows = [int(w) for w in re.findall(r"\[(\d+)m\]", rule["expr"])]
        if "tyk_auth0_requests_total" in rule["expr"]:
            assert windows and int(rule["for"][:-1]) > max(windows), rule["alert"]


def test_the_alerts_cover_exactly_the_signals_readme_lists():
    from plugin.metrics import OUTCOMES

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## What to monitor"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # past the header and its rule
    signals = " ".join(row.split("|")[1] for row in rows)
    named = set(re.findall(r"`([^`]+)`", signals))
    named_metrics = {m for token in named for m in re.findall(r"tyk_auth0_\w+", token)}
    named_outcomes = {o for token in named for o in re.findall(r'(?:^|outcome=")(\w+)', token) if o in OUTCOMES}
    exprs = [r["expr"] for r in alert_rules()]
    used_metrics = {m for e in exprs for m, _ in selectors(e)} - {"up"}
    used_outcomes = {v for e in exprs for _, matchers in selectors(e) for label, op, value in matchers
                     if label == "outcome" and op in ("=", "=~") for v in value.split("|")}
    assert used_metrics == named_metrics
    assert used_outcomes == named_outcomes
    assert "deploy/prometheus/alerts.yml" in section


def test_a_down_alert_names_the_scrape_job_and_one_watches_readiness():
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    assert exprs["TykAuth0PluginDown"] == f'up{{job="{SCRAPE_JOB}"}} == 0'
    assert f'job="{SCRAPE_JOB}"' in ALERTS.read_text().split("groups:")[0]  # the assumption is stated
    assert exprs["TykAuth0PluginNotReady"] == "tyk_auth0_ready == 0"


def test_promtool_accepts_the_rules():
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kubernetes_monitoring_objects_scrape_the_plugin_under_the_rules_job_name():
    docs = documents("monitoring.yaml")
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"], \
        "monitoring.yaml's PrometheusRule differs from deploy/prometheus/alerts.yml: copy the groups over"
    (service,) = by_kind(documents("deployment.yaml"), "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == SCRAPE_JOB
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
