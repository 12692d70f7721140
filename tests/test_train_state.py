"""`infer.modules.train.state`: train_state.json read and written through `TrainState`; the latest pair."""

from __future__ import annotations

import json
from pathlib import Path

from infer.lib.layout import ExperimentLayout
from infer.modules.train.state import TrainState, latest_checkpoints, read_state, state_path

# train_state.json as the trainer writes it (key order included)
WRITTEN = {
    "epoch": 3,
    "step": 42,
    "checkpoint_g": "G_42.pth",
    "checkpoint_d": "D_42.pth",
    "version": "v2",
    "sample_rate": "40k",
    "use_f0": True,
    "name": "joe",
    "scheduler_g": {"gamma": 0.999875, "base_lrs": [0.0001], "last_epoch": 3, "_step_count": 4},
    "scheduler_d": {"gamma": 0.999875, "base_lrs": [0.0001], "last_epoch": 3, "_step_count": 4},
    "scaler": None,
    "history": [{"epoch": 3, "step": 42, "loss_mel": 1.5, "holdout_mel": 2.25}],
    "best_epoch": 3,
    "best_holdout_mel": 2.25,
    "best_model_path": "joe_best_e3.pth",
    "skipped_steps": 1,
    "initial_holdout_mel": 3.5,
    "standin_weights": False,
    "from_scratch": True,
}


def _exp(tmp_path: Path) -> ExperimentLayout:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    return exp


def _touch(exp: ExperimentLayout, *names: str) -> None:
    for n in names:
        (exp.checkpoint_dir / n).write_bytes(b"x")


def test_state_round_trips_to_the_same_json(tmp_path: Path) -> None:
    exp = _exp(tmp_path)
    state = TrainState.from_dict(WRITTEN)
    assert state.step == 42 and state.best_epoch == 3 and state.history[0]["loss_mel"] == 1.5
    path = state.write(exp)
    assert path == state_path(exp)
    assert path.read_text() == json.dumps(WRITTEN, indent=1)
    assert read_state(exp) == state


def test_latest_pair_from_the_state_else_the_newest_complete_pair(tmp_path: Path) -> None:
    exp = _exp(tmp_path)
    assert latest_checkpoints(exp) is None
    _touch(exp, "G_10.pth", "D_10.pth", "G_42.pth", "D_42.pth", "G_50.pth")  # G_50 has no D
    assert latest_checkpoints(exp) == (exp.checkpoint_dir / "G_42.pth", exp.checkpoint_dir / "D_42.pth", None)
    TrainState.from_dict({**WRITTEN, "checkpoint_g": "G_10.pth", "checkpoint_d": "D_10.pth"}).write(exp)
    found = latest_checkpoints(exp)
    assert found is not None
    g, d, state = found
    assert (g.name, d.name) == ("G_10.pth", "D_10.pth") and state is not None and state.epoch == 3
    # a state naming a path, not a plain file name, is not followed
    state_path(exp).write_text(json.dumps({**WRITTEN, "checkpoint_g": "../G_10.pth"}))
    assert latest_checkpoints(exp) == (exp.checkpoint_dir / "G_42.pth", exp.checkpoint_dir / "D_42.pth", None)


def test_best_model_path_with_a_folder_is_dropped() -> None:
    assert TrainState.from_dict({**WRITTEN, "best_model_path": "/proc/self/environ"}).best_model_path is None
    minimal = {k: WRITTEN[k] for k in ("epoch", "step", "checkpoint_g", "checkpoint_d", "scheduler_g", "scheduler_d")}
    state = TrainState.from_dict(minimal)
    assert state.history == [] and state.best_epoch is None and state.skipped_steps == 0 and not state.standin_weights
