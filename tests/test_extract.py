"""The extraction skeleton: the scheduling policy and the retry of a failed group."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import infer.modules.train.extract as E
from infer.modules.train.extract import Schedule, compute_group, plan


def test_plan_is_the_scheduling_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "cpu_count", lambda: 8)
    assert plan(100, None, on_gpu=True, threadable=False) == Schedule("serial")  # a GPU: this process
    assert plan(1, None, on_gpu=False, threadable=True) == Schedule("serial")  # one segment: one worker
    assert plan(0, 4, on_gpu=False, threadable=False) == Schedule("serial")  # all cached
    assert plan(100, None, on_gpu=False, threadable=True) == Schedule("threads", 8)
    assert plan(100, 2, on_gpu=False, threadable=False) == Schedule("processes", 2, 4)
    assert plan(3, None, on_gpu=False, threadable=False) == Schedule("processes", 3, 2)


def test_a_failed_group_is_retried_one_by_one() -> None:
    calls: list[list[str]] = []

    def compute(paths: list[Path]) -> list[np.ndarray]:
        calls.append([p.name for p in paths])
        if any(p.name == "bad" for p in paths):
            raise ValueError("unreadable")
        return [np.full(2, len(p.name), np.float32) for p in paths]

    group = [Path("a"), Path("bad"), Path("ccc")]
    out = compute_group(compute, group, "test")
    assert [(p.name, None if r is None else r.tolist(), e) for p, r, e in out] == [
        ("a", [1.0, 1.0], None),
        ("bad", None, "ValueError: unreadable"),
        ("ccc", [3.0, 3.0], None),
    ]
    assert calls == [["a", "bad", "ccc"], ["a"], ["bad"], ["ccc"]]
