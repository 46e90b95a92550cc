#!/usr/bin/env bash
# Build the open-source Tyk gateway the devstack and the e2e tests run against.
#
# The pinned version comes from the Go module proxy (module github.com/TykTechnologies/tyk
# at the v5.14.0 commit) and is built inside a writable copy of that module, because its
# go.mod carries replace directives that only apply when building in the main module.
#
# Prints the path of the gateway executable as the last line of stdout; everything else
# goes to stderr.
#
#   TYK_GATEWAY_BIN=/path/to/tyk   use that executable, build nothing
#   TYK_GATEWAY_CACHE=DIR          cache root (default: <repo>/.cache/gateway)
set -euo pipefail

TYK_VERSION="v5.14.0"
TYK_MODULE="github.com/TykTechnologies/tyk"
TYK_COMMIT="2e9450120e2b05f13457f441ee012cc57d6bd604"
TYK_PSEUDO_VERSION="v1.9.2-0.20260707114557-2e9450120e2b"

say() { printf 'build-gateway: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [[ -n "${TYK_GATEWAY_BIN:-}" ]]; then
  [[ -f "$TYK_GATEWAY_BIN" && -x "$TYK_GATEWAY_BIN" ]] \
    || die "TYK_GATEWAY_BIN=$TYK_GATEWAY_BIN is not an executable file"
  say "using TYK_GATEWAY_BIN=$TYK_GATEWAY_BIN"
  printf '%s\n' "$TYK_GATEWAY_BIN"
  exit 0
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache_root="${TYK_GATEWAY_CACHE:-$repo_root/.cache/gateway}"
out_dir="$cache_root/tyk-$TYK_VERSION"
out_bin="$out_dir/tyk"
stamp="$out_dir/SOURCE"
want_stamp="$TYK_MODULE@$TYK_PSEUDO_VERSION ($TYK_COMMIT)"

if [[ -x "$out_bin" && -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]]; then
  say "cached: $out_bin ($want_stamp)"
  printf '%s\n' "$out_bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is not on PATH; install Go >= 1.25 or set TYK_GATEWAY_BIN"

download_cmd=(go mod download -json "$TYK_MODULE@$TYK_PSEUDO_VERSION")
say "downloading Tyk $TYK_VERSION from the Go module proxy ($(go env GOPROXY))"
say "running: ${download_cmd[*]}"
err_file="$(mktemp)"
set +e
# Run outside any module so the repo's own state cannot interfere.
download_json="$(cd "${TMPDIR:-/tmp}" && "${download_cmd[@]}" 2>"$err_file")"
status=$?
set -e
download_err="$(cat "$err_file")"
rm -f "$err_file"

json_field() {
  python3 -c 'import json, sys; print(json.loads(sys.stdin.read() or "{}").get(sys.argv[1], ""))' "$1" \
    <<<"$download_json" 2>/dev/null || true
}
module_error="$(json_field Error)"
module_dir="$(json_field Dir)"

if [[ $status -ne 0 || -n "$module_error" || -z "$module_dir" || ! -f "$module_dir/go.mod" ]]; then
  say "ERROR: cannot download the gateway module."
  say "  command: ${download_cmd[*]}"
  say "  exit status: $status"
  [[ -n "$module_error" ]] && say "  error: $module_error"
  [[ -n "$download_err" ]] && say "  stderr: $download_err"
  say "Set TYK_GATEWAY_BIN to a Tyk gateway $TYK_VERSION executable to run the stack without building."
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/tyk-gateway-build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
say "module at $module_dir; building in $work"
cp -R "$module_dir/." "$work/src"
chmod -R u+w "$work/src"

mkdir -p "$out_dir"
build_cmd=(go build -trimpath -o "$out_bin.tmp" .)
say "running: ${build_cmd[*]}"
# -mod=mod: the copy may need go.sum lines for the build host; it is thrown away anyway.
if ! (cd "$work/src" && GOFLAGS="${GOFLAGS:-} -mod=mod" "${build_cmd[@]}" >&2); then
  rm -f "$out_bin.tmp"
  die "go build failed (command: ${build_cmd[*]} in a copy of $module_dir)"
fi
mv -f "$out_bin.tmp" "$out_bin"
printf '%s\n' "$want_stamp" >"$stamp"
say "built $out_bin"
printf '%s\n' "$out_bin"
