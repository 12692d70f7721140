#!/usr/bin/env bash
# Set up the CPU/dev environment: system packages (ffmpeg, the venv module; espeak-ng, a second voice
# for the speaker tests; chromium for the browser tests) and .venv/ with Python 3.11
# (`PYTHON=python3.11` picks the interpreter), wheels only.
# Called by `make setup` (and so by `make test` and `make demo`) when .venv is missing or older than
# a requirements file. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup: $PY not found: install Python 3.11 (or set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$PYVER" != "3.11" ] && [ ! -x .venv/bin/python ]; then
  echo "setup: $PY is Python $PYVER; the pinned stack is built and tested for Python 3.11." >&2
  echo "       Install python3.11 and python3.11-venv, then run again with PYTHON=python3.11." >&2
  exit 1
fi

need_apt=()
# Debian/Ubuntu ship the venv module (ensurepip) separately: python3.11-venv
[ -x .venv/bin/python ] || "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=("python$PYVER-venv")
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
if [ "${RVC_SKIP_BROWSER:-0}" != "1" ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need_apt[*]}." >&2
    echo "       Install them (e.g. 'sudo apt-get install ${need_apt[*]}') and run again." >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv || { rm -rf .venv; exit 1; }
fi
.venv/bin/python -m pip install -q --upgrade pip
# wheels only, as in the images: a package that would need a compiler fails here, by name
.venv/bin/python -m pip install -q --only-binary=:all: -r requirements-cpu.txt -r requirements.txt -r requirements-dev.txt
.venv/bin/python -m pip install -q --only-binary=:all: --no-deps -r requirements-nodeps.txt
# torchaudio from PyPI is a CUDA build whose native library cannot load beside CPU torch
# (libc10_cuda.so); without it, the pure-Python parts torchcrepe/torchfcpe use import and work.
.venv/bin/python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchaudio")
if spec and spec.origin:
    for so in (pathlib.Path(spec.origin).parent / "lib").glob("*.so"):
        so.unlink()
        print(f"setup: removed CUDA-only {so.name} from the CPU venv")
PY
.venv/bin/python -c "import torch, torchaudio.transforms, torchcrepe, torchfcpe, faiss, librosa, clearvoice; print('setup: torch', torch.__version__, 'ok')"
touch .venv/.installed
