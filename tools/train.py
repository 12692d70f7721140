"""Train a voice model locally: the whole pipeline on a folder of audio, a zip or URLs -> a model zip.

    python -m tools.train DATA... --out joe.zip [--name joe] [--epochs 20] [--batch-size auto] ...
    python -m tools.train ~/recordings/joe/ --out joe.zip --workdir logs/joe --until features

DATA: audio files, folders (searched recursively for audio), dataset zips, or http(s)/data: URLs,
in any mix. The options are the Predictor's (see `TrainOptions`). `--workdir` keeps the experiment
folder in the reference layout (0_gt_wavs, 3_feature768, filelist.txt, G_*.pth ...) for inspection,
and re-running with the same workdir resumes from its latest checkpoint; without it a temporary
folder is used and removed. `--until STAGE` stops after preprocess, features, train or index.
Exit status 0 on success, 1 with the reason on the last line otherwise (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from infer.lib.errors import CancelledError, RVCError, UserInputError
from infer.lib.log import get_logger, setup_logging

_log = get_logger("tools.train")

AUDIO_SUFFIXES = {
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".webm", ".mp4", ".mkv", ".mov",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from infer.lib.config import SAMPLE_RATES, VERSIONS
    from infer.lib.f0 import F0_METHODS
    from infer.modules.train.pipeline import UNTIL_CHOICES, TrainOptions

    d = TrainOptions()
    p = argparse.ArgumentParser(
        prog="python -m tools.train", description="Train an RVC voice model and write the model zip."
    )
    p.add_argument("data", nargs="+", help="audio files, folders, dataset zips or http(s) URLs")
    p.add_argument("--out", required=True, type=Path, help="the model zip to write")
    p.add_argument("--workdir", type=Path, help="keep the experiment folder here (resumes if it has checkpoints)")
    p.add_argument("--until", choices=UNTIL_CHOICES, help="stop after this stage")
    p.add_argument("--name", default=d.experiment_name, help="model name (file names in the zip)")
    p.add_argument("--version", choices=VERSIONS, default=d.version)
    p.add_argument("--sample-rate", choices=list(SAMPLE_RATES), default=d.sample_rate)
    p.add_argument("--no-f0", action="store_true", help="train a model without pitch guidance")
    p.add_argument("--f0method", choices=F0_METHODS, default=d.f0method)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", default=str(d.batch_size), help="per GPU: an integer or 'auto'")
    p.add_argument("--save-every-epoch", type=int, default=d.save_every_epoch)
    p.add_argument("--no-enhance", action="store_true", help="skip MossFormer2 speech enhancement")
    p.add_argument("--no-trim", action="store_true", help="keep leading/trailing silence")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume-from", help="a model zip written with --include-checkpoints, to continue")
    p.add_argument("--include-checkpoints", action="store_true", help="put the G/D checkpoints in the zip")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the best available)")
    p.add_argument("--gpus", type=int, default=d.gpus, help="DDP processes, 0 = every GPU")
    p.add_argument("--from-scratch", action="store_true", help="no pretrained G/D (needs hours of training)")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--holdout", type=int, help="held-out segments (default: automatic)")
    p.add_argument("--no-preview", action="store_true", help="do not convert a preview.wav")
    p.add_argument(
        "--keep-other-speakers",
        action="store_true",
        help="also train on files whose voice sounds like another person's (left out by default)",
    )
    return p


def options_from_args(a: argparse.Namespace) -> object:
    from infer.modules.train.pipeline import TrainOptions

    return TrainOptions(
        experiment_name=a.name,
        version=a.version,
        sample_rate=a.sample_rate,
        use_f0=not a.no_f0,
        f0method=a.f0method,
        epochs=a.epochs,
        batch_size=a.batch_size,
        save_every_epoch=a.save_every_epoch,
        enhance_audio=not a.no_enhance,
        trim_silence=not a.no_trim,
        seed=a.seed,
        resume_from=a.resume_from,
        include_checkpoints=a.include_checkpoints,
        device=a.device,
        gpus=a.gpus,
        from_scratch=a.from_scratch,
        learning_rate=a.learning_rate,
        holdout=a.holdout,
        preview=not a.no_preview,
        keep_other_speakers=a.keep_other_speakers,
    )


def gather_inputs(data: Sequence[str], work: Path) -> list[Path]:
    """Audio files from `data`: files as given, folders searched, zips unpacked, URLs downloaded."""
    from infer.modules.train.preprocess import collect_inputs

    files: list[Path] = []
    urls: list[str] = []
    for i, item in enumerate(data):
        if item.startswith(("http://", "https://", "data:")) or "://" in item:
            urls.append(item)
            continue
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES and not any(x.startswith(".") for x in f.parts)
            )
            if not found:
                raise UserInputError(f"{p}: no audio files in this folder")
            files += found
        elif p.is_file() and p.suffix.lower() == ".zip":
            files += collect_inputs(None, p, work / f"zip{i}")
        elif p.is_file():
            files.append(p)
        else:
            raise UserInputError(f"{item}: no such file or folder")
    if urls:
        files += collect_inputs(urls, None, work / "downloads")
    if not files:
        raise UserInputError("no training audio found in the inputs")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    setup_logging()
    tmp: str | None = None
    try:
        from infer.modules.train.pipeline import TrainModules

        opts = options_from_args(a)
        if a.workdir is None:
            tmp = tempfile.mkdtemp(prefix="rvc-train-")
            workdir = Path(tmp) / "exp"
        else:
            workdir = a.workdir
        inputs_dir = workdir.parent / f".{workdir.name}-inputs"
        cancel = threading.Event()
        tm = TrainModules(opts, workdir, cancel=cancel)  # type: ignore[arg-type]
        tm.check_resume()  # a bad resume_from zip fails before any download
        inputs = gather_inputs(a.data, inputs_dir)
        res = tm.run(inputs, a.out, until=a.until)
        if res.zip_path:
            print(f"model zip: {res.zip_path}")
        else:
            print(f"stopped after {a.until}; experiment folder: {workdir}")
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except CancelledError as e:
        print(f"error: cancelled: {e}", file=sys.stderr)
        return 1
    except (UserInputError, RVCError) as e:
        _log.debug("failure", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
