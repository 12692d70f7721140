"""Write stand-in weights: the published on-disk formats with deterministic values and a marker.

    python -m tools.make_standin_weights --out DIR [--tiny-hubert]
    python -m tools.make_standin_weights --out DIR --version v2 --sample-rate 40k --f0   # one job's set
    python -m tools.make_standin_weights --out DIR --names hubert/hubert_base.pt rmvpe/rmvpe.pt

Writes DIR/hubert/hubert_base.pt (fairseq format, full size or `--tiny-hubert`), DIR/rmvpe/rmvpe.pt,
DIR/pretrained{,_v2}/{,f0}{G,D}{32,40,48}k.pth and DIR/mossformer2/MossFormer2_SE_48K/, each through
its writer in `tools.standin_writers`, and lists them in
DIR/STANDIN_WEIGHTS.json. Every file carries the stand-in marker, so the loaders log loudly that the
trained voice will not be usable. Tests and the offline demo point RVC_WEIGHTS_DIR at such a folder;
nothing else ever uses these files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from infer.lib.config import SAMPLE_RATES, VERSIONS
from infer.lib.errors import RVCError, UserInputError
from infer.lib.log import get_logger, setup_logging
from infer.lib.weight_files import record_standins
from infer.lib.weights import (
    BUNDLES,
    HUBERT,
    MOSSFORMER2,
    RMVPE,
    all_weights,
    pretrained_names,
    required_weights,
)
from tools.standin_writers import (
    write_standin_hubert,
    write_standin_mossformer2,
    write_standin_pretrained,
    write_standin_rmvpe,
)

_log = get_logger("make_standin_weights")


def writers(tiny_hubert: bool = False) -> dict[str, Callable[[Path], object]]:
    """{name: function(path)} for every name of the weights layout (bundles write their folder)."""
    out: dict[str, Callable[[Path], object]] = {
        HUBERT: partial(write_standin_hubert, size="tiny" if tiny_hubert else "base"),
        RMVPE: write_standin_rmvpe,
        MOSSFORMER2: write_standin_mossformer2,
    }
    for version in VERSIONS:
        for sr in SAMPLE_RATES:
            for use_f0 in (True, False):
                g, d = pretrained_names(version, sr, use_f0)
                out[g] = partial(write_standin_pretrained, version=version, sample_rate=sr, use_f0=use_f0, kind="G")
                out[d] = partial(write_standin_pretrained, version=version, sample_rate=sr, use_f0=use_f0, kind="D")
    return out


def write_standins(out_dir: str | Path, names: Sequence[str] | None = None, tiny_hubert: bool = False) -> list[Path]:
    """Write the stand-ins for `names` (default: the whole layout) under `out_dir`; return their paths.

    The names are those of `infer.lib.weights` (a bundle such as `mossformer2/MossFormer2_SE_48K` is
    one folder). Each file goes through its writer, then is listed in STANDIN_WEIGHTS.json.
    """
    out_dir = Path(out_dir)
    table = writers(tiny_hubert)
    names = list(all_weights() if names is None else names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserInputError(f"no stand-in writer for {unknown}; known names: {sorted(table)}")
    paths: list[Path] = []
    for name in dict.fromkeys(names):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in BUNDLES:
            path.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        table[name](path)
        files = list(BUNDLES[name].files) if name in BUNDLES else [name]
        record_standins(out_dir, files)
        _log.info("stand-in %s written (%.1fs)", name, time.monotonic() - t0)
        paths.append(path)
    return paths


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.make_standin_weights",
        description="Write stand-in weights (published formats, deterministic values, marked) for tests/demo.",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write (use it as RVC_WEIGHTS_DIR)")
    p.add_argument("--tiny-hubert", action="store_true", help="a small HuBERT (width 32) instead of full size")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--names", nargs="+", metavar="NAME", help="only these names (default: everything)")
    which.add_argument("--version", choices=VERSIONS, help="only one training job's set")
    p.add_argument("--sample-rate", choices=list(SAMPLE_RATES), default="40k")
    f0 = p.add_mutually_exclusive_group()
    f0.add_argument("--f0", dest="use_f0", action="store_true", default=True)
    f0.add_argument("--no-f0", dest="use_f0", action="store_false")
    p.add_argument("--f0-method", default="rmvpe")
    p.add_argument("--enhance", action="store_true", help="with --version: also MossFormer2")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.names:
        names: list[str] | None = list(args.names)
    elif args.version:
        names = required_weights(args.version, args.sample_rate, args.use_f0, args.f0_method, args.enhance)
    else:
        names = None
    try:
        paths = write_standins(args.out, names, tiny_hubert=args.tiny_hubert)
    except RVCError as e:
        _log.error("%s", e)
        return 1
    _log.warning("wrote %d STAND-IN weights under %s: for tests and the offline demo only", len(paths), args.out)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
