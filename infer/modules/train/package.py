"""The model zip: what the package stage writes into it, and its checkpoints read back to resume.

    preview.wav      held-out audio of the user's voice converted by the trained model (`make_preview`)
    model_card.json  options, dataset, training figures, durations, versions (built by the pipeline;
                     `relative_paths` keeps host paths out of it)
    loss.png         the loss curves (`plot_losses`)
    the zip          `write_model_zip`; `unpack_checkpoints` copies its checkpoints back for `resume_from`

A preview or a figure that cannot be made is logged and left out: it never sinks a finished run.
"""

from __future__ import annotations

import json
import platform
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infer.lib.fileio import atomic_path
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger
from infer.lib.options import TrainOptions
from infer.lib.resume_state import CKPT_DIR, STATE_MEMBER, SizeCaps, unpack_resume
from infer.modules.train.state import TrainState, state_path

_log = get_logger("pipeline")

PREVIEW_SR = 16000  # the held-out audio the preview converts is the 16 kHz copy
PREVIEW_SECONDS = 8.0  # the excerpt `write_preview` converts
#: The training report's entries the model card's `training` holds, in order.
TRAINING_CARD_KEYS: tuple[str, ...] = (
    "start_epoch",
    "epochs",
    "steps",
    "batch_size",
    "world_size",
    "device",
    "precision",
    "n_train_segments",
    "n_holdout_segments",
    "holdout_segments",
    "skipped_steps",
    "final_losses",
    "initial_holdout_mel",
    "final_holdout_mel",
    "best_epoch",
    "best_holdout_mel",
    "from_scratch",
    "history",
)


# --------------------------------------------------------------------------------------------------
# The preview and its speaker similarity
# --------------------------------------------------------------------------------------------------


@dataclass
class Preview:
    """preview.wav (`path`) and what made it: the held-out `source` (16 kHz), the conversion result
    (`converted`: audio, sample_rate), the converter and its parameters."""

    path: Path
    source: Any
    converted: Any
    vc: Any
    params: Any


def make_preview(
    exp: ExperimentLayout,
    train_report: Mapping[str, Any],
    index_path: Path | None,
    weights: Mapping[str, Path],
    device: str,
    options: TrainOptions,
) -> Preview | None:
    """Convert a few seconds of the held-out segments (else of the first training segments) with the
    trained model into `<exp>/reports/preview.wav`; None (logged) when conversion is unavailable or fails."""
    try:
        from infer.modules.vc import VC, ConvertParams, write_preview
    except ImportError:
        _log.info("preview.wav skipped: the conversion module is not available")
        return None
    try:
        import numpy as np

        from infer.lib.audio import load_audio
        from infer.lib.weights import HUBERT, RMVPE

        names = train_report.get("holdout_segments") or []
        srcs = [exp.wavs16k_dir / n for n in names if (exp.wavs16k_dir / n).is_file()]
        if not srcs:
            srcs = sorted(exp.wavs16k_dir.glob("*.wav"))[:3]
        source = np.concatenate([load_audio(p, PREVIEW_SR) for p in srcs])
        vc = VC(device=device, half=False, hubert_path=weights.get(HUBERT), rmvpe_path=weights.get(RMVPE))
        out = exp.reports_dir / "preview.wav"
        params = ConvertParams(f0_method=options.for_device(device).f0method, seed=options.seed)
        model = Path(train_report["model_path"])
        conv = write_preview(out, model, source, PREVIEW_SR, index_path, vc=vc, params=params)
    except Exception as e:  # noqa: BLE001 - a preview must never sink a finished training run
        _log.warning("preview.wav skipped: %s", e)
        return None
    return Preview(out, source, conv, vc, params)


def preview_quality(
    preview: Preview,
    centre: Any,
    train_report: Mapping[str, Any],
    index_path: Path | None,
    standin: Sequence[str],
    from_scratch: bool,
) -> dict[str, Any] | None:
    """Speaker similarity of the preview (and of the best-epoch model's conversion of the same
    excerpt) and of the held-out original to the training speaker's `centre` embedding
    (`quality.voice_quality`); None (logged) when it cannot be measured."""
    try:
        from infer.modules.train.quality import voice_quality
        from infer.modules.vc.vc import pick_preview_excerpt

        excerpt = pick_preview_excerpt(preview.source, PREVIEW_SR, PREVIEW_SECONDS)  # what write_preview converted
        previews = {"preview": (preview.converted.audio, preview.converted.sample_rate)}
        best = train_report.get("best_model_path")
        if best and Path(best).is_file() and Path(best) != Path(train_report["model_path"]):
            b = preview.vc.convert_detailed(excerpt, PREVIEW_SR, Path(best), index_path, preview.params)
            previews["best_preview"] = (b.audio, b.sample_rate)
        return voice_quality(centre, excerpt, previews, standin, from_scratch=from_scratch)
    except Exception as e:  # noqa: BLE001 - a figure must never sink a finished training run
        _log.warning("preview speaker similarity skipped: %s", e)
        return None


# --------------------------------------------------------------------------------------------------
# The model card's parts
# --------------------------------------------------------------------------------------------------


def card_options(options: TrainOptions) -> dict[str, Any]:
    """The options as the model card and the log show them: `resume_from` by its file name."""
    d = options.to_dict()
    if d.get("resume_from"):
        d["resume_from"] = Path(d["resume_from"]).name
    return d


def index_card(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The index stage's report with the index named by its file name."""
    if report is None:
        return None
    return {**report, "path": Path(report["path"]).name}


def relative_paths(obj: Any, roots: Sequence[str]) -> Any:
    """`obj` (JSON-like) with every occurrence of one of `roots` (+ "/") removed from its strings, at the
    start or inside a message, so that no host path reaches the zip."""
    prefixes = sorted({r.rstrip("/") + "/" for r in roots if r.rstrip("/")}, key=len, reverse=True)
    if isinstance(obj, dict):
        return {k: relative_paths(v, prefixes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [relative_paths(v, prefixes) for v in obj]
    if isinstance(obj, str):
        for pre in prefixes:
            if pre in obj:
                obj = obj.replace(pre, "")
    return obj


def versions() -> dict[str, str]:
    """Versions of the software that made the model."""
    import numpy
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import faiss

        out["faiss"] = faiss.__version__
    except Exception:
        pass
    try:
        from importlib.metadata import version

        out["rvc-trainer"] = version("rvc-trainer")
    except Exception:
        pass
    try:
        import subprocess

        repo = Path(__file__).resolve().parents[3]
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            out["git_commit"] = sha.stdout.strip()
    except Exception:
        pass
    return out


def plot_losses(history: Sequence[dict[str, Any]], path: Path, initial_holdout: float | None = None) -> Path:
    """loss.png: training mel L1 and held-out mel L1 per epoch, and the discriminator/generator losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    ax1.plot(ep, [h.get("mel_l1", float("nan")) for h in history], "o-", label="training mel L1")
    held = [(h["epoch"], h["holdout_mel"]) for h in history if h.get("holdout_mel") is not None]
    if held and initial_holdout is not None:
        held.insert(0, (0, initial_holdout))
    if held:
        ax1.plot([e for e, _ in held], [v for _, v in held], "s-", label="held-out mel L1 (conversion)")
        best = min(held[1:] if initial_holdout is not None else held, key=lambda x: x[1])
        ax1.axvline(best[0], color="grey", ls="--", lw=1, label=f"best held-out epoch {best[0]}")
    ax1.set_ylabel("mel L1")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for key, label in (
        ("loss_d", "discriminator"),
        ("loss_gen", "generator (adv.)"),
        ("loss_fm", "feature matching"),
        ("loss_kl", "KL"),
    ):
        ax2.plot(ep, [h.get(key, float("nan")) for h in history], "-", label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("loss")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# The zip
# --------------------------------------------------------------------------------------------------


def _zip_members(
    exp: ExperimentLayout,
    name: str,
    train_report: dict[str, Any],
    index_path: Path | None,
    include_checkpoints: bool,
    preview: Path | None,
) -> list[tuple[Path, str]]:
    """(file, name in the zip) of every member but the model card; writes loss.png."""
    members: list[tuple[Path, str]] = [(Path(train_report["model_path"]), f"{name}.pth")]
    if train_report.get("best_model_path"):
        bp = Path(train_report["best_model_path"])
        members.append((bp, bp.name))
    if index_path is not None:
        members.append((index_path, index_path.name))
    members.append((exp.config_path, "config.json"))
    loss_png = exp.reports_dir / "loss.png"
    if train_report.get("history"):
        plot_losses(train_report["history"], loss_png, train_report.get("initial_holdout_mel"))
        members.append((loss_png, "loss.png"))
    if exp.tensorboard_dir.is_dir():
        for p in sorted(exp.tensorboard_dir.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                members.append((p, f"tensorboard/{p.relative_to(exp.tensorboard_dir).as_posix()}"))
    if exp.log_path.is_file():
        members.append((exp.log_path, "train.log"))
    if include_checkpoints:
        for key in ("checkpoint_g", "checkpoint_d"):
            ckpt = Path(train_report[key])
            members.append((ckpt, f"{CKPT_DIR}/{ckpt.name}"))
        members.append((state_path(exp), STATE_MEMBER))
    if preview is not None and preview.is_file():
        members.append((preview, "preview.wav"))
    return members


def write_model_zip(
    out: Path,
    exp: ExperimentLayout,
    name: str,
    model_card: dict[str, Any],
    train_report: dict[str, Any],
    index_path: Path | None,
    include_checkpoints: bool,
    preview: Path | None = None,
) -> Path:
    """Write the model zip atomically. Members:

    `<name>.pth` (small model), `<name>_best_e<N>.pth` (lowest held-out loss), the index,
    `config.json`, `model_card.json`, `loss.png`, `tensorboard/...`, `train.log`,
    `checkpoints/{G,D}_<step>.pth` + `checkpoints/train_state.json` (include_checkpoints),
    `preview.wav` (when given). No feature dumps.
    """
    members = _zip_members(exp, name, train_report, index_path, include_checkpoints, preview)
    card = dict(model_card)
    card["files"] = sorted({arc for _, arc in members} | {"model_card.json"})
    out = Path(out)
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as z:
            for src, arc in members:
                binary = src.suffix in (".pth", ".index", ".wav", ".png")
                z.write(src, arc, compress_type=zipfile.ZIP_STORED if binary else zipfile.ZIP_DEFLATED)
            z.writestr("model_card.json", json.dumps(card, indent=2, default=str), compress_type=zipfile.ZIP_DEFLATED)
    _log.info("zip: %s (%.1f MB, %d files)", out, out.stat().st_size / 2**20, len(members) + 1)
    return out


def unpack_checkpoints(zip_path: Path, exp: ExperimentLayout, caps: SizeCaps | None = None) -> dict[str, Any]:
    """Copy the checkpoints and best-epoch model of a model zip into the experiment folder, under the
    checked plain names, and write the checked train state there (`infer.lib.resume_state`: the zip
    is untrusted input)."""
    state = unpack_resume(zip_path, exp.checkpoint_dir, caps)
    TrainState.from_dict(state).write(exp)
    return state
