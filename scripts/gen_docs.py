"""Write docs/configuration.md from plugin.config.SETTINGS and the serve command's flags.

The reference is generated so that it can never disagree with the code; a test fails when the
committed file is out of date (run ``make docs``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for _name in [n for n in os.environ if n.startswith(("TYK_AUTH0_", "AUTH0_"))]:
    del os.environ[_name]  # the reference shows built-in defaults, not this shell's settings

from plugin import server  # noqa: E402
from plugin.config import SETTINGS  # noqa: E402

TARGET = ROOT / "docs" / "configuration.md"


def _code(value: str) -> str:
    """A value as code, leaving prose out of the backticks: a description such as "the header's
    name", and a trailing note such as "(OAS)"."""
    if not value:
        return ""
    if value.startswith("the "):
        return value
    name, sep, note = value.partition(" (")
    return f"`{name}` ({note}" if sep else f"`{value}`"


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the code (`make docs`); do not edit by hand.",
        "",
        "## Per API: `config_data`",
        "",
        "Put these keys in the API definition's `config_data` (classic) or",
        "`middleware.global.pluginConfig.data.value` (Tyk OAS). An API that sends no `config_data` (or `{}`)",
        "gets the server-wide defaults from the environment variables in the second column; an API",
        "that sends one gets none of them (its `config_data` is its whole configuration), except",
        "`TYK_HASH_KEY_FUNCTION`, which applies to every API whose `config_data` does not set",
        "`hash_key_function`. The variable of a setting that takes a list holds a comma-separated list",
        "or a JSON array (`AUTH0_AUDIENCE=https://a,https://b` or `'[\"https://a\", \"https://b\"]'`);",
        "`AUTH0_JWT_SOURCE` is read as a list only when it is a JSON array or every comma-separated part",
        "is a URL. A key set to `null` is taken as left out, as the gateway reads `null` in its own API",
        "definitions.",
        "",
        "| key | environment default | default | native JWT twin | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        env = f"`{s.env}`" if s.env else ""
        default = _code(s.default)
        native = _code(s.native or "")
        lines.append(f"| `{s.key}` | {env} | {default} | {native} | {s.doc} |")
    lines += [
        "",
        "## Server: `tyk-auth0-plugin serve`",
        "",
        "| flag | meaning |",
        "|---|---|",
    ]
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    server.add_cli(subparsers)
    serve = subparsers.choices["serve"]
    for action in serve._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = ", ".join(f"`{o}`" for o in action.option_strings)
        text = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
        lines.append(f"| {flag} | {text} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = cli.parse_args()
    text = render()
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run make docs", file=sys.stderr)
            raise SystemExit(1)
        return
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(TARGET.relative_to(ROOT))


if __name__ == "__main__":
    main()
