"""`make demo`: the main job end to end with no network, then a conversion with the trained model.

    python -m tools.demo [--out runs/demo] [--epochs N] [--audio DIR] [--enhance]

1. Audio: the sample voice in `../shared/data/joe_1min` (or `--audio DIR`, or `$RVC_SHARED_DIR`);
   when none is there, a synthetic voice-like signal is generated (clearly not a real voice).
2. Weights: the real ones when present in the weights folder (`RVC_WEIGHTS_DIR`, default `assets/`);
   otherwise stand-in weights are written to `<out>/standin-weights` and used - and the demo says so,
   loudly: a model trained from them is not a usable voice, it only shows the pipeline working.
3. The job runs as under Cog (the shared models loaded once as `Predictor.setup()` does, then the
   job runner `run_job` that the Predictor calls) with RVC_OFFLINE=1, and returns the model zip.
4. A sample of the voice is converted with the trained model and its index (`infer.modules.vc.VC`).
5. The paths of the zip and of the converted preview are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infer.lib.options import F0Method, TrainOptions

REPO_ROOT = Path(__file__).resolve().parents[1]
BANNER = "!" * 78


def shout(*lines: str) -> None:
    print(BANNER, *(f"!! {line}" for line in lines), BANNER, sep="\n", flush=True)


def sample_audio(audio_dir: Path | None, out: Path) -> tuple[list[Path], str]:
    """The demo's recordings: a folder of audio files, or generated ones. Returns (files, description)."""
    from infer.lib.audio import AUDIO_EXTENSIONS

    candidates = [audio_dir] if audio_dir else []
    shared = Path(os.environ.get("RVC_SHARED_DIR", REPO_ROOT.parent / "shared"))
    candidates.append(shared / "data" / "joe_1min")
    for d in candidates:
        if d and d.is_dir():
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
            if files:
                return files, f"the sample voice in {d}"
    return generate_voice_like_audio(out / "generated-audio"), "GENERATED audio (no sample voice found)"


def generate_voice_like_audio(folder: Path, seconds: float = 40.0, sr: int = 32000) -> list[Path]:
    """Voice-like test signals: a glottal-pulse-ish harmonic source with vibrato and gliding pitch,
    shaped by moving formant resonances into syllables separated by short pauses. Not speech."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import lfilter

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(4):
        n = int(seconds / 4 * sr)
        t = np.arange(n) / sr
        f0 = 120 + 30 * k + 25 * np.sin(2 * np.pi * 0.3 * t) + 4 * np.sin(2 * np.pi * 5.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        src = sum((0.6**h) * np.sin(h * phase) for h in range(1, 25)) + 0.02 * rng.standard_normal(n)
        y = np.zeros(n)
        seg = int(0.25 * sr)
        for i in range(0, n, seg):
            f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2300)
            chunk = src[i : i + seg]
            for fc, bw in ((f1, 80), (f2, 120)):
                r = np.exp(-np.pi * bw / sr)
                a = [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
                chunk = lfilter([1 - r], a, chunk)
            y[i : i + seg] = chunk
        env = (np.sin(2 * np.pi * 1.6 * t) > -0.6).astype(float)  # syllables with pauses
        env = np.convolve(env, np.hanning(int(0.03 * sr)) / (0.015 * sr), mode="same")
        y = 0.5 * y * env / (np.abs(y * env).max() + 1e-9)
        path = folder / f"generated_{k}.wav"
        sf.write(path, y.astype(np.float32), sr)
        files.append(path)
    return files


def prepare_weights(out: Path, version: str, sample_rate: str, enhance: bool) -> bool:
    """Use the real weights if present, else write stand-ins; set RVC_WEIGHTS_DIR. True = stand-ins."""
    from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
    from infer.lib.weights import HUBERT, RMVPE, required_weights

    # setup() needs HuBERT and RMVPE; the default variant's pair it fetches only when it can
    needed = list(dict.fromkeys([HUBERT, RMVPE] + required_weights(version, sample_rate, True, "rmvpe", enhance)))
    settings = WeightsSettings.from_env(offline=True)
    if not WeightDownloader(settings).missing(needed):
        print(f"demo: using the real weights in {settings.weights_dir}", flush=True)
        os.environ["RVC_WEIGHTS_DIR"] = str(settings.weights_dir)
        return False
    standin = out / "standin-weights"
    standin_wd = WeightDownloader(WeightsSettings(weights_dir=standin, offline=True))
    to_write = [n for n in needed if standin_wd.missing([n])]
    if to_write:
        from tools.make_standin_weights import main as make_standins

        print(f"demo: writing stand-in weights to {standin} (about a minute)", flush=True)
        if make_standins(["--out", str(standin), "--names", *to_write]) != 0:
            raise SystemExit("demo: could not write stand-in weights")
    shout(
        f"The real model weights are not in {settings.weights_dir}.",
        "This demo uses STAND-IN weights (random values in the real file formats):",
        "the pipeline runs for real, but the trained voice will NOT be usable.",
        "For a real voice: `python -m tools.download_weights --base` (needs network), then run again.",
    )
    os.environ["RVC_WEIGHTS_DIR"] = str(standin)
    return True


def train_model(dataset: Path, out: Path, options: TrainOptions) -> Path:
    """Run the job as the Predictor does (shared models loaded once, then `run_job`); the zip, copied to `out`."""
    from infer.modules.train.job import JobInputs, SharedModels, Workspace, run_job

    shared = SharedModels.load()
    workspace = Workspace.create()
    result = run_job(options, JobInputs(zips=(dataset,)), workspace, shared_models=shared)
    assert result.zip_path is not None
    zip_path = out / result.zip_path.name
    shutil.copy2(result.zip_path, zip_path)
    workspace.release()
    return zip_path


def convert_sample(zip_path: Path, model_name: str, audio: Path, out: Path, gpu: bool) -> tuple[Path, Path, Path]:
    """Unpack the zip into `<out>/model` and convert the start of `audio` with its model and index.
    Returns (the excerpt, the converted excerpt, the model folder)."""
    import soundfile as sf

    from infer.lib.audio import load_audio
    from infer.lib.weight_downloader import WeightDownloader
    from infer.lib.weights import HUBERT, RMVPE
    from infer.modules.vc import VC, ConvertParams

    model_dir = out / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(model_dir)
    index = next(iter(sorted(model_dir.glob("added_IVF*.index"))), None)
    wd = WeightDownloader()
    vc = VC(hubert_path=wd.fetch([HUBERT])[HUBERT], rmvpe_path=wd.path(RMVPE))
    # a few seconds are enough to hear it (the full-size synthesizer is slow on a CPU)
    sample = out / "sample_excerpt.wav"
    sf.write(sample, load_audio(audio, 16000)[: 16000 * (30 if gpu else 6)], 16000)
    converted = out / "converted_sample.wav"
    params = ConvertParams(f0_method="rmvpe" if gpu else "pm")
    vc.convert_file(sample, converted, model_dir / f"{model_name}.pth", index, params)
    return sample, converted, model_dir


def main(argv: list[str] | None = None) -> int:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from infer.lib.options import DEFAULTS, F0_METHODS, SAMPLE_RATES, TrainOptions

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "demo", help="where everything goes")
    ap.add_argument("--audio", type=Path, default=None, help="a folder of recordings (default: the sample voice)")
    ap.add_argument("--epochs", type=int, default=None, help="default: 1 on CPU, 20 on a GPU")
    ap.add_argument("--sample-rate", default="40k", choices=SAMPLE_RATES)
    ap.add_argument("--f0method", choices=F0_METHODS, help="default: rmvpe_gpu on a GPU, pm on CPU (fast)")
    ap.add_argument("--enhance", action="store_true", help="denoise with MossFormer2 first (slow on CPU)")
    args = ap.parse_args(argv)

    os.environ["RVC_OFFLINE"] = "1"  # the demo never touches the network
    os.environ.setdefault("RVC_JOBS_DIR", str(args.out / "jobs"))
    os.environ.setdefault("RVC_CACHE_DIR", str(args.out / "cache"))
    from infer.lib.log import setup_logging

    setup_logging()
    import torch

    gpu = torch.cuda.is_available()
    epochs = args.epochs or (20 if gpu else 1)
    f0method: F0Method = args.f0method or ("rmvpe_gpu" if gpu else "pm")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()

    files, what = sample_audio(args.audio, args.out)
    print(f"demo: training on {what}: {len(files)} file(s)", flush=True)
    dataset = args.out / "dataset.zip"
    with zipfile.ZipFile(dataset, "w") as zf:
        for f in files:
            zf.write(f, f"voice/{f.name}")
    version = DEFAULTS["version"]
    standin = prepare_weights(args.out, version, args.sample_rate, args.enhance)
    options = TrainOptions(
        sample_rate=args.sample_rate,
        version=version,
        f0method=f0method,
        epochs=epochs,
        batch_size="auto" if gpu else "4",
        enhance_audio=args.enhance,
        experiment_name="demo_voice",
        save_every_epoch=max(1, epochs),
        seed=1234,
    )
    zip_path = train_model(dataset, args.out, options)
    sample, converted, model_dir = convert_sample(zip_path, options.experiment_name, files[0], args.out, gpu)

    print(flush=True)
    print(f"demo: done in {time.monotonic() - t_start:.0f}s", flush=True)
    print(f"  model zip:         {zip_path}", flush=True)
    print(f"  converted sample:  {converted}  (from {sample.name}, the start of {files[0].name})", flush=True)
    if (model_dir / "preview.wav").is_file():
        print(f"  training preview:  {model_dir / 'preview.wav'}", flush=True)
    if standin:
        shout("Trained from STAND-IN weights: the files are real, the voice is not usable.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
