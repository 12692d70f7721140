"""Convert a recording with a trained RVC voice model.

    python -m tools.convert --model voice.pth [--index added_IVF..._v2.index] \
        --input in.wav --output out.wav [--f0-up-key 12] [--f0-method rmvpe] [--index-rate 0.75] ...

The model may come from this project's training, RVC WebUI or Applio. HuBERT (and RMVPE for the
rmvpe methods) are taken from the weights folder (`RVC_WEIGHTS_DIR`, default `assets/`) and
downloaded there when missing, unless `--hubert` / `--rmvpe` name files.
"""

from __future__ import annotations

import argparse
import json
import sys

from infer.lib.errors import UserInputError, WeightsError


def build_parser() -> argparse.ArgumentParser:
    from infer.lib.f0 import F0_METHODS
    from infer.modules.vc.pipeline import ConvertParams

    d = ConvertParams()
    p = argparse.ArgumentParser(prog="python -m tools.convert", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="voice model .pth (ours, RVC WebUI or Applio)")
    p.add_argument("--index", default=None, help="retrieval .index trained with the model (optional)")
    p.add_argument("--input", required=True, help="audio to convert (any format ffmpeg reads)")
    p.add_argument("--output", required=True, help="converted audio: .wav (16-bit), .flac or .ogg")
    p.add_argument("--f0-up-key", type=float, default=d.f0_up_key, help="pitch shift in semitones (+12 = octave up)")
    p.add_argument("--f0-method", choices=F0_METHODS, default=d.f0_method, help="pitch extractor")
    p.add_argument("--index-rate", type=float, default=d.index_rate, help="0..1 share of index-retrieved features")
    p.add_argument(
        "--filter-radius", type=int, default=d.filter_radius, help=">=3: 3-frame median filter on harvest pitch"
    )
    p.add_argument("--resample-sr", type=int, default=d.resample_sr, help="output rate in Hz (0 = the model's)")
    p.add_argument("--rms-mix-rate", type=float, default=d.rms_mix_rate, help="1 = model loudness, 0 = source's")
    p.add_argument("--protect", type=float, default=d.protect, help="0..0.5 protection of consonants (0.5 = off)")
    p.add_argument("--speaker-id", type=int, default=d.speaker_id, help="speaker id of multi-speaker models")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible output")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when available)")
    p.add_argument("--fp32", action="store_true", help="full precision on CUDA (default: fp16 on CUDA)")
    p.add_argument("--hubert", default=None, help="hubert_base.pt (default: from the weights folder)")
    p.add_argument("--rmvpe", default=None, help="rmvpe.pt (default: from the weights folder)")
    p.add_argument("--window-seconds", type=float, default=None, help="split inputs longer than this (seconds)")
    p.add_argument("--report", default=None, help="write a JSON report (settings, timings, peak memory) here")
    return p


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory in MiB (None where `resource` is missing)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from infer.lib.fileio import atomic_write_text
    from infer.lib.log import get_logger, setup_logging
    from infer.modules.vc import VC, ConvertParams, WindowConfig

    setup_logging()
    log = get_logger("convert")
    try:
        params = ConvertParams(
            f0_up_key=args.f0_up_key,
            f0_method=args.f0_method,
            index_rate=args.index_rate,
            filter_radius=args.filter_radius,
            resample_sr=args.resample_sr,
            rms_mix_rate=args.rms_mix_rate,
            protect=args.protect,
            speaker_id=args.speaker_id,
            seed=args.seed,
        )
        window = None
        if args.window_seconds is not None:
            c = float(args.window_seconds)
            if c < 2:
                raise UserInputError(f"--window-seconds must be >= 2, got {c}")
            window = WindowConfig(pad_s=min(1.0, c / 4), query_s=c / 6, center_s=c, max_s=c * 1.08)
        vc = VC(
            device=args.device,
            half=False if args.fp32 else None,
            hubert_path=args.hubert,
            rmvpe_path=args.rmvpe,
            window=window,
        )
        result = vc.convert_file(args.input, args.output, args.model, args.index, params)
    except (UserInputError, WeightsError) as e:
        log.error("%s", e)
        return 2
    log.info("wrote %s (%.1fs at %d Hz)", args.output, len(result.audio) / result.sample_rate, result.sample_rate)
    if args.report:
        report = result.to_dict()
        report["peak_rss_mib"] = _peak_rss_mib()
        atomic_write_text(args.report, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
