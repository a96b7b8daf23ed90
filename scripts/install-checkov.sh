#!/usr/bin/env bash
# Install checkov into its own venv under .tools/checkov (idempotent).
#
# Why its own venv: checkov pins dozens of libraries (boto3, networkx, jsonschema 4.17...) that would
# fight the serving lock in .venv. The chart tests call .tools/checkov/bin/checkov with --skip-download.
# Usage: scripts/install-checkov.sh [TOOLS_DIR]
set -euo pipefail

repo_root=$(cd "$(dirname "$0")/.." && pwd)
tools_dir=${1:-${TOOLS_DIR:-$repo_root/.tools}}
version=3.3.30
venv=$tools_dir/checkov

stamp="$version $(sha256sum "$repo_root/scripts/checkov-constraints.txt" | cut -c1-16)"
if [ -x "$venv/bin/checkov" ] && [ "$(cat "$venv/.version" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
echo "install-checkov: installing checkov==$version into $venv (a minute or two)" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -c "$repo_root/scripts/checkov-constraints.txt" "checkov==$version"
echo "$stamp" > "$venv/.version"
"$venv/bin/checkov" --version >&2
