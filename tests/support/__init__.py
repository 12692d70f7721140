"""Helpers and fixtures for the tests: where the repository and ../shared are (here), stand-in weights
(`standins`), tiny configs and trainings with the session's one trained run (`training`), real media
files (`media`), local HTTP servers (`http_server`), the product servers (`product`), the reference's
deterministic weights (`reference_weights`). The fixture modules are loaded as plugins by
tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("RVC_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
