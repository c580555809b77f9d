#!/usr/bin/env bash
# Installs what building and testing qmm needs: Debian packages with apt-get (only those
# missing) and Python packages with pip into ./.venv. Idempotent and quiet when nothing is
# missing. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages. Each component may add its own needs to scripts/apt-packages.txt.
mapfile -t want < <(grep -v '^\s*#' scripts/apt-packages.txt | tr -s ' \t' '\n' | grep -v '^$')
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages (tests, fixtures, bindings) in a virtual environment of the repository.
if [ -s scripts/pip-requirements.txt ]; then
  PY=${QMM_PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
  fi
  stamp=.venv/.qmm-requirements
  if ! cmp -s scripts/pip-requirements.txt "$stamp" 2>/dev/null; then
    echo "setup: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r scripts/pip-requirements.txt
    cp scripts/pip-requirements.txt "$stamp"
  fi
fi
