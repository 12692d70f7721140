"""`python -m bench.gpu_check`: its CPU-emulated part runs here, so the device check cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import gpu_check


def test_cpu_part_passes_and_says_the_gpu_part_did_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    rc = gpu_check.main(["--cpu-only", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    assert result["gpu_part"] is False
    checks = {r["check"]: r for r in result["rows"]}
    assert len(checks) == 6 and all(r["ok"] is True and r["error"] is None for r in checks.values()), checks
    assert checks["trainer start with device None/cuda/cuda:0"]["figures"]["None"]["device"] == "cuda:0"
    assert checks["precision by capability"]["figures"] == {"7.0": "fp16", "7.5": "fp16", "8.0": "bf16", "9.0": "bf16"}
    assert "| emulated | precision by capability | ok |" in printed
    if not torch.cuda.is_available():
        assert "no CUDA GPU on this machine" in printed
