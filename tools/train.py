"""Train a voice model locally: the whole pipeline on a folder of audio, a zip or URLs -> a model zip.

    python -m tools.train DATA... --out joe.zip [--name joe] [--epochs 20] [--batch-size auto] ...
    python -m tools.train ~/recordings/joe/ --out joe.zip --workdir logs/joe --until features

DATA: audio files, folders (searched recursively for audio), dataset zips, or http(s)/data: URLs,
in any mix. The options are the Predictor's, with the same defaults (`infer.lib.options.TrainOptions`;
the job runs through the same runner, `infer.modules.train.job.run_job`). `--workdir` keeps the experiment
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
from collections.abc import Sequence
from pathlib import Path
from typing import get_args, get_type_hints

from infer.lib.errors import CancelledError, RVCError, UserInputError
from infer.lib.log import get_logger, setup_logging
from infer.lib.options import OPTION_FIELDS, TrainOptions, choices

_log = get_logger("tools.train")

# flags whose name is not `--<field name with dashes>`; booleans that default to True get `--no-...`
FLAGS = {
    "experiment_name": "--name",
    "use_f0": "--no-f0",
    "enhance_audio": "--no-enhance",
    "trim_silence": "--no-trim",
    "preview": "--no-preview",
}
HELP = {
    "experiment_name": "model name (file names in the zip)",
    "batch_size": "per GPU: a whole number or 'auto'",
    "use_f0": "train a model without pitch guidance",
    "enhance_audio": "skip MossFormer2 speech enhancement",
    "trim_silence": "keep leading/trailing silence",
    "preview": "do not convert a preview.wav",
    "seed": "random seed (default: a random one, logged)",
    "resume_from": "a model zip written with --include-checkpoints, to continue",
    "include_checkpoints": "put the G/D checkpoints in the zip",
    "device": "cpu, cuda, cuda:1 (default: the best available)",
    "gpus": "DDP processes, 0 = every GPU",
    "from_scratch": "no pretrained G/D (needs hours of training)",
    "holdout": "held-out segments (default: automatic)",
}


def build_parser() -> argparse.ArgumentParser:
    """The flags, one per `TrainOptions` field (defaults, choices and types from there)."""
    from infer.modules.train.pipeline import UNTIL_CHOICES

    p = argparse.ArgumentParser(
        prog="python -m tools.train", description="Train an RVC voice model and write the model zip."
    )
    p.add_argument("data", nargs="+", help="audio files, folders, dataset zips or http(s) URLs")
    p.add_argument("--out", required=True, type=Path, help="the model zip to write")
    p.add_argument("--workdir", type=Path, help="keep the experiment folder here (resumes if it has checkpoints)")
    p.add_argument("--until", choices=UNTIL_CHOICES, help="stop after this stage")
    hints = get_type_hints(TrainOptions)
    for name, f in OPTION_FIELDS.items():
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        help_text = HELP.get(name, f.metadata["label"])
        if isinstance(f.default, bool):
            action = "store_false" if f.default else "store_true"
            p.add_argument(flag, dest=name, action=action, help=help_text)
        elif name in ("sample_rate", "version", "f0method"):
            p.add_argument(flag, dest=name, choices=choices(name), default=f.default, help=help_text)
        else:
            default = f.default
            more = f" (default {default})" if default is not None else ""
            p.add_argument(flag, dest=name, type=_arg_type(hints[name]), default=default, help=help_text + more)
    return p


def _arg_type(hint: object) -> type:
    """The argparse type of an option: float, int, or text (batch_size takes "auto" too)."""
    args = set(get_args(hint)) or {hint}
    if float in args:
        return float
    return int if int in args and str not in args else str


def options_from_args(a: argparse.Namespace) -> TrainOptions:
    return TrainOptions(**{name: getattr(a, name) for name in OPTION_FIELDS})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    setup_logging()
    try:
        from infer.modules.train.job import Workspace, local_audio, run_job

        opts = options_from_args(a)
        inputs = local_audio(a.data)
        if a.workdir is None:
            workspace = Workspace.create(tempfile.mkdtemp(prefix="rvc-train-"), purge=False)
        else:
            workspace = Workspace.for_experiment(a.workdir)
        try:
            res = run_job(opts, inputs, workspace, until=a.until, keep_workspace=a.workdir is not None)
            if res.zip_path:
                a.out.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(res.zip_path), a.out)
                print(f"model zip: {a.out}")
            else:
                print(f"stopped after {a.until}; experiment folder: {workspace.exp_dir}")
        finally:
            workspace.release()
            shutil.rmtree(workspace.root, ignore_errors=True)
            if a.workdir is None:
                shutil.rmtree(workspace.root.parent, ignore_errors=True)
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


if __name__ == "__main__":
    sys.exit(main())
