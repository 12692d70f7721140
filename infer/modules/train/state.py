"""The resume state of a training run: `<exp>/train_state.json`, one `TrainState`, read and written here.

The trainer writes it beside every checkpoint pair it keeps; on start it finds the latest pair through
it (`latest_checkpoints`) and continues exactly: step, learning-rate schedules, GradScaler, history,
best held-out epoch. The checkpoint and best-model entries are plain file names (checked on read), so
every path is derived from the experiment folder. Without the file (a reference-made experiment) the
newest complete `G_<step>.pth` / `D_<step>.pth` pair is used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infer.lib.fileio import atomic_write_text
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger

_log = get_logger("train")

STATE_FILE = "train_state.json"
#: The step in the reference's `G_2333333.pth` / `D_2333333.pth` ("the latest checkpoint"): not a step count.
REFERENCE_LATEST_STEP = 2333333


def state_path(exp: ExperimentLayout) -> Path:
    """`<exp>/train_state.json`: where the latest checkpoint pair and the run's history are recorded."""
    return exp.root / STATE_FILE


@dataclass
class TrainState:
    """What a resumed run needs beyond the checkpoints' weights and optimizers (the JSON keys, in order).

    `epoch`: completed epochs; `step`: optimizer steps done; `checkpoint_g` / `checkpoint_d`: the pair's
    file names in the experiment folder; `scheduler_g` / `scheduler_d` / `scaler`: the state dicts of
    the ExponentialLRs and the GradScaler (None without one); `history`: one record per epoch;
    `best_epoch` / `best_holdout_mel` / `best_model_path`: the best held-out epoch and its exported model.
    """

    epoch: int
    step: int
    checkpoint_g: str
    checkpoint_d: str
    version: str | None = None
    sample_rate: str | None = None
    use_f0: bool | None = None
    name: str | None = None
    scheduler_g: dict[str, Any] = field(default_factory=dict)
    scheduler_d: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_holdout_mel: float | None = None
    best_model_path: str | None = None
    skipped_steps: int = 0
    initial_holdout_mel: float | None = None
    standin_weights: bool = False
    from_scratch: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        """From the JSON object (unknown keys ignored; `best_model_path` kept only when a plain model name).

        KeyError when `epoch`, `step`, `checkpoint_g`, `checkpoint_d`, `scheduler_g` or `scheduler_d` is missing.
        """
        from infer.lib.resume_state import BEST_RE

        best = d.get("best_model_path")
        return cls(
            epoch=int(d["epoch"]),
            step=int(d["step"]),
            checkpoint_g=d["checkpoint_g"],
            checkpoint_d=d["checkpoint_d"],
            version=d.get("version"),
            sample_rate=d.get("sample_rate"),
            use_f0=d.get("use_f0"),
            name=d.get("name"),
            scheduler_g=d["scheduler_g"],
            scheduler_d=d["scheduler_d"],
            scaler=d.get("scaler"),
            history=list(d.get("history", [])),
            best_epoch=None if d.get("best_epoch") is None else int(d["best_epoch"]),
            best_holdout_mel=None if d.get("best_epoch") is None else float(d["best_holdout_mel"]),
            best_model_path=best if isinstance(best, str) and BEST_RE.match(best) else None,
            skipped_steps=int(d.get("skipped_steps", 0)),
            initial_holdout_mel=d.get("initial_holdout_mel"),
            standin_weights=bool(d.get("standin_weights", False)),
            from_scratch=bool(d.get("from_scratch", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, exp: ExperimentLayout) -> Path:
        """Write `<exp>/train_state.json` atomically; returns its path."""
        path = state_path(exp)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, default=float))
        return path


def read_state(exp: ExperimentLayout) -> TrainState:
    """The state in `<exp>/train_state.json` (which must exist)."""
    return TrainState.from_dict(json.loads(state_path(exp).read_text()))


def _pair_names_ok(d: Any) -> bool:
    from infer.lib.resume_state import D_RE, G_RE

    gn, dn = (d.get("checkpoint_g"), d.get("checkpoint_d")) if isinstance(d, dict) else (None, None)
    return isinstance(gn, str) and isinstance(dn, str) and bool(G_RE.match(gn)) and bool(D_RE.match(dn))


def latest_checkpoints(exp: ExperimentLayout) -> tuple[Path, Path, TrainState | None] | None:
    """(G, D, state) of the latest checkpoint pair, from train_state.json or the newest G_*/D_* files."""
    sp = state_path(exp)
    if sp.is_file():
        raw = json.loads(sp.read_text())
        # plain names only: every path is derived from the experiment folder
        if _pair_names_ok(raw):
            g, d = exp.checkpoint_dir / raw["checkpoint_g"], exp.checkpoint_dir / raw["checkpoint_d"]
            if g.is_file() and d.is_file():
                return g, d, TrainState.from_dict(raw)
        _log.warning("%s names checkpoints that are missing; looking for G_*.pth files instead", sp.name)

    def steps(prefix: str) -> dict[int, Path]:
        out = {}
        for p in exp.checkpoint_dir.glob(f"{prefix}_*.pth"):
            try:
                out[int(p.stem.split("_", 1)[1])] = p
            except ValueError:
                continue
        return out

    gs, ds = steps("G"), steps("D")
    common = sorted(set(gs) & set(ds))
    if not common:
        return None
    return gs[common[-1]], ds[common[-1]], None
