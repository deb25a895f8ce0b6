#!/usr/bin/env bash
# Create (or refresh) a virtualenv with uv and install the provider with its test extras.
#   scripts/venv.sh [VENV_DIR] [AIRFLOW_SPEC]
# VENV_DIR defaults to .venv; AIRFLOW_SPEC (e.g. "apache-airflow==2.11.*") pins Airflow for the
# compatibility run. Re-running is cheap: a stamp of pyproject.toml + spec skips a no-op install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
airflow_spec="${2:-apache-airflow>=3.1}"

# pip --user puts uv in ~/.local/bin, which is often not on PATH: look there before installing,
# so only the first call on a machine installs it.
export PATH="$PATH:$HOME/.local/bin"
if ! command -v uv >/dev/null 2>&1; then
  echo "== installing uv (from PyPI)" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  hash -r
fi

stamp="$venv/.clova-stamp"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $airflow_spec"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "== preparing $venv ($airflow_spec)" >&2
[ -x "$venv/bin/python" ] || uv venv --quiet --python ">=3.10" "$venv"
VIRTUAL_ENV="$venv" uv pip install --quiet -e ".[test]" "$airflow_spec"
echo "$want" > "$stamp"
