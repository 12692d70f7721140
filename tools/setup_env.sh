#!/usr/bin/env bash
# Set up the CPU/dev environment: system packages (ffmpeg; chromium for the browser tests) and .venv/.
# Called by `make setup` (and so by `make test` and `make demo`) when .venv is missing or older than
# a requirements file. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
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

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-cpu.txt -r requirements.txt -r requirements-dev.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
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
