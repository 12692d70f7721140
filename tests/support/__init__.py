"""Helpers for the tests: where the repository and ../shared are, tiny configs and trainings
(`training`), real media files (`media`), a local HTTP server (`http_server`), the product servers
(`product`). Fixtures built on them are in tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("RVC_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
