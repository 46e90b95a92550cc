#!/usr/bin/env bash
# Prints the Python the Makefile installs into and runs with: the first python3 when pip may
# install there (a virtualenv, pyenv, a Python without PEP 668's EXTERNALLY-MANAGED marker);
# otherwise .venv/bin/python, which `make venv` creates (or recreates when it has no pip).
# Debian's own python3 is the usual "otherwise": it refuses `pip install` outside a virtualenv,
# or has no pip at all.
set -u
if python3 - 2>/dev/null <<'PY'
import importlib.util, os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if importlib.util.find_spec("pip") and (in_venv or not managed) else 1)
PY
then
  echo python3
else
  echo .venv/bin/python
fi
