"""Fetch model weights into the weights folder (`RVC_WEIGHTS_DIR`, default `assets/`).

    python -m tools.download_weights --base                         # what predict.py's setup() needs
    python -m tools.download_weights --version v2 --sample-rate 40k --f0 --f0-method rmvpe --enhance
    python -m tools.download_weights --all                          # every published file (about 3 GB)
    python -m tools.download_weights --names hubert/hubert_base.pt pretrained_v2/f0G40k.pth
    python -m tools.download_weights --list                         # the manifest, nothing fetched
    python -m tools.download_weights --check --base                 # verify what is there, no network

The container build runs it to bake weights into the image; `RVC_WEIGHTS_BASE_URL` (or
`--base-url`) fetches from a mirror that keeps the same relative paths.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infer.lib.config import SAMPLE_RATES, VERSIONS
from infer.lib.errors import RVCError
from infer.lib.log import get_logger, setup_logging
from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
from infer.lib.weights import BUNDLES, MANIFEST, all_weights, base_weights, required_weights

_log = get_logger("download_weights")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.download_weights",
        description="Fetch RVC model weights (verified, resumable, in parallel) into the weights folder.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every file of the manifest")
    which.add_argument("--base", action="store_true", help="HuBERT, RMVPE and the v2 40k f0 pretrained pair")
    which.add_argument("--names", nargs="+", metavar="NAME", help="names relative to the weights folder")
    job = p.add_argument_group("a training job's set (used when --version is given)")
    job.add_argument("--version", choices=VERSIONS, help="model version")
    job.add_argument("--sample-rate", choices=list(SAMPLE_RATES), default="40k", help="default 40k")
    f0 = job.add_mutually_exclusive_group()
    f0.add_argument("--f0", dest="use_f0", action="store_true", default=True, help="pitch-guided model (default)")
    f0.add_argument("--no-f0", dest="use_f0", action="store_false", help="model without pitch guidance")
    job.add_argument("--f0-method", default="rmvpe", help="pitch method; rmvpe/rmvpe_gpu need rmvpe.pt")
    job.add_argument("--enhance", action="store_true", help="also MossFormer2_SE_48K (speech enhancement)")
    p.add_argument("--weights-dir", type=Path, help="weights folder (default $RVC_WEIGHTS_DIR or assets/)")
    p.add_argument("--base-url", help="mirror keeping the relative paths (default $RVC_WEIGHTS_BASE_URL)")
    p.add_argument("--offline", action="store_true", help="no network: only check what is present")
    p.add_argument("--check", action="store_true", help="same as --offline")
    p.add_argument("--workers", type=int, help="parallel downloads (default 4)")
    p.add_argument("--list", action="store_true", help="print the manifest and exit")
    return p


def selected_names(args: argparse.Namespace) -> list[str]:
    """The names the arguments ask for (raises SystemExit with usage when none)."""
    if args.all:
        return all_weights()
    if args.base:
        return base_weights()
    if args.names:
        return list(args.names)
    if args.version:
        return required_weights(args.version, args.sample_rate, args.use_f0, args.f0_method, args.enhance)
    build_parser().error("choose a set: --all, --base, --names ... or --version ...")
    raise AssertionError  # unreachable: error() exits


def print_manifest() -> None:
    in_bundle = {f: b for b in BUNDLES.values() for f in b.files}
    for name, f in MANIFEST.items():
        size = f"{f.size:>11,d}" if f.size is not None else "    unknown"
        sha = f.sha256 or "(no published sha256)"
        bundle = f"  [part of {in_bundle[name].name}]" if name in in_bundle else ""
        print(f"{name:48s} {size}  {sha}{bundle}")
        for url in f.urls:
            print(f"{'':48s} {url}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.list:
        print_manifest()
        return 0
    names = selected_names(args)
    overrides: dict[str, Any] = {}
    if args.weights_dir is not None:
        overrides["weights_dir"] = args.weights_dir
    if args.base_url:
        overrides["base_url"] = args.base_url
    if args.offline or args.check:
        overrides["offline"] = True
    if args.workers is not None:
        overrides["max_workers"] = args.workers
    try:
        settings = WeightsSettings.from_env(**overrides)
        downloader = WeightDownloader(settings)
        paths = downloader.fetch(names)
    except RVCError as e:
        _log.error("%s", e)
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
