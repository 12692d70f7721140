"""Write `tests/fixtures/vc_reference.npz`: the reference RVC's own conversion and training-pitch output.

The reference is RVC WebUI at branch 20240604 (RVC-Project/Retrieval-based-Voice-Conversion-WebUI).
Its code is not part of this project: this script imports it from a checkout given on the command
line, runs it once on small inputs and stores the numbers, which `tests/test_vc_reference.py`
compares our implementation against in the default suite.

    git -C <clone> archive 20240604 infer | tar -x -C /tmp/rvcref
    python -m tests.make_vc_reference_fixture --reference /tmp/rvcref

What runs, on both sides with the same weights and inputs:
- conversion: the reference `Pipeline.pipeline` (as `VC.vc_single` calls it: input peak-normalised
  to 0.95, x_pad 1 / x_query 6 / x_center 38 / x_max 41, fp32 on the CPU) with the v2 40k
  synthesizer `tests/fixtures/tiny_pitch_v2_40k.pth` built by the reference's own
  `SynthesizerTrnMs768NSFsid`; content features from our HuBERT (the stand-in base, deterministic
  values) standing in for fairseq's, which is all the reference pipeline asks of its model
  (`extract_features`, the features match fairseq's to ~5e-6, `tests/test_hubert.py`); pitch by the
  reference's RMVPE with the stand-in `rmvpe.pt` (loaded strictly by the reference) and pm; a flat
  index of deterministic vectors at index_rate 0.75, protect 0.33, rms_mix_rate 0.25,
  filter_radius 3; pitch shift 0 and 12. Sampling noise is fixed to zero (`zero_noise`).
- training pitch: the reference `extract_f0_print.py` `FeatureInput.compute_f0` for pm and harvest
  on the segments of `training_segments`.

The input is 1.5 s of `../shared/data/joe_1min/joe_000.wav` (from 1.0 s, resampled to 16 kHz by
soxr), stored in the fixture as int16 so both sides read the same samples.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
import torch

if TYPE_CHECKING:
    from infer.lib.hubert import HubertModel

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "vc_reference.npz"
MODEL = HERE / "fixtures" / "tiny_pitch_v2_40k.pth"
SR16 = 16000
SETTINGS = [("rmvpe", 0), ("rmvpe", 12), ("pm", 0), ("pm", 12)]  # (f0_method, f0_up_key)
INDEX_RATE = 0.75
PROTECT = 0.33
RMS_MIX_RATE = 0.25
FILTER_RADIUS = 3
TRAINING_METHODS = ("pm", "harvest")


@contextlib.contextmanager
def zero_noise() -> Iterator[None]:
    """`torch.randn_like` returns zeros inside the block: both synthesizers' only sampling noise
    (the prior sample and the NSF source's noise) is fixed, so the outputs are deterministic."""
    with mock.patch.object(torch, "randn_like", lambda t, *a, **k: torch.zeros_like(t, *a, **k)):
        yield


def write_model(path: Path) -> Path:
    """`tiny_pitch_v2_40k.pth` in a shape the reference can build, computing the same function.

    The tiny network's resblocks have two dilations (1, 3); the reference's `ResBlock1` always has
    three. A third conv pair whose second conv has weight_g = 0 and bias 0 adds exactly nothing
    (x + c2(...) = x), so the model with dilations (1, 3, 5) is the same voice.
    """
    cpt = torch.load(MODEL, map_location="cpu", weights_only=True)
    weight = dict(cpt["weight"])
    n_blocks = 1 + max(int(k.split(".")[2]) for k in weight if k.startswith("dec.resblocks."))
    for i in range(n_blocks):
        for part in ("weight_g", "weight_v", "bias"):
            one = weight[f"dec.resblocks.{i}.convs2.1.{part}"]
            weight[f"dec.resblocks.{i}.convs1.2.{part}"] = weight[f"dec.resblocks.{i}.convs1.1.{part}"].clone()
            weight[f"dec.resblocks.{i}.convs2.2.{part}"] = one.clone() if part == "weight_v" else torch.zeros_like(one)
    config = list(cpt["config"])
    config[11] = [[1, 3, 5] for _ in config[11]]
    torch.save({**cpt, "weight": weight, "config": config}, path)
    return path


def make_index_vectors() -> np.ndarray:
    """The retrieval index's vectors: 256 x 768 deterministic float32."""
    return (np.random.default_rng(0).standard_normal((256, 768)) * 0.5).astype(np.float32)


def write_index(path: Path) -> Path:
    import faiss

    index = faiss.IndexFlatL2(768)
    index.add(make_index_vectors())
    faiss.write_index(index, str(path))
    return path


def training_segments(clip: np.ndarray) -> list[np.ndarray]:
    """The training-pitch segments: the clip, the clip reversed, an odd-length cut, a vibrato tone."""
    from bench.f0_accuracy import make_signal

    tone = make_signal("vibrato", 1.3).audio
    return [clip, clip[::-1].copy(), clip[: SR16 + 37].copy(), np.asarray(tone, np.float32)]


def read_input() -> np.ndarray:
    """The source clip from the shared data (generation only; the fixture stores it)."""
    import soundfile as sf
    import soxr

    path = HERE.parent.parent / "shared" / "data" / "joe_1min" / "joe_000.wav"
    x, sr = sf.read(os.environ.get("RVC_FIXTURE_INPUT", str(path)), dtype="float32")
    x = soxr.resample(x, sr, SR16, quality="HQ")
    return x[SR16 : SR16 + int(1.5 * SR16)]


class HubertStandIn:
    """Our HuBERT behind fairseq's interface, as the reference pipeline calls it (v2: layer 12)."""

    def __init__(self, model: HubertModel) -> None:
        self.model = model

    def extract_features(
        self, source: torch.Tensor, padding_mask: torch.Tensor, output_layer: int
    ) -> tuple[torch.Tensor, None]:
        assert output_layer == 12 and not bool(padding_mask.any())
        return self.model.extract(source.float(), None, "v2"), None

    def final_proj(self, x: torch.Tensor) -> torch.Tensor:  # v1 only; unused for the v2 model
        raise NotImplementedError


def _feature_input_class(reference: Path, load_audio: object) -> type:
    """`FeatureInput` from the reference's extract_f0_print.py (that file runs a job at import)."""
    import parselmouth
    import pyworld

    src = (reference / "infer/modules/train/extract/extract_f0_print.py").read_text()
    tree = ast.parse(src)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FeatureInput")
    ns: dict[str, Any] = {"np": np, "parselmouth": parselmouth, "pyworld": pyworld, "load_audio": load_audio}
    exec(compile(ast.Module(body=[cls], type_ignores=[]), "extract_f0_print.py", "exec"), ns)
    return ns["FeatureInput"]


def make_fixture(reference: Path, out: Path = FIXTURE) -> dict[str, np.ndarray]:
    from infer.lib.hubert import load_hubert
    from tools.standin_writers import write_standin_hubert, write_standin_rmvpe

    torch.set_num_threads(1)
    clip16 = np.round(read_input() * 32767).astype(np.int16)
    clip = clip16.astype(np.float32) / 32768.0
    tmp = Path(tempfile.mkdtemp(prefix="vcref_"))
    hubert = load_hubert(write_standin_hubert(tmp / "hubert_base.pt", size="base"), "cpu").prepare_inference()
    write_standin_rmvpe(tmp / "rmvpe" / "rmvpe.pt")
    index_path = write_index(tmp / "added_IVF1_Flat_nprobe_1_ref_v2.index")
    segments = training_segments(clip)
    cpt = torch.load(write_model(tmp / "model.pth"), map_location="cpu", weights_only=True)

    # from here on `infer` is the reference's package
    for name in [m for m in sys.modules if m == "infer" or m.startswith("infer.")]:
        del sys.modules[name]
    repo = HERE.parent.resolve()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != repo]  # ours is a regular package:
    sys.path.insert(0, str(reference))  # it would win over the reference's namespace package
    os.chdir(reference)  # the reference appends the working directory to sys.path
    os.environ["rmvpe_root"] = str(tmp / "rmvpe")
    SynthesizerTrnMs768NSFsid = importlib.import_module("infer.lib.infer_pack.models").SynthesizerTrnMs768NSFsid
    Pipeline = importlib.import_module("infer.modules.vc.pipeline").Pipeline

    assert Path(sys.modules["infer"].__file__ or "").resolve().is_relative_to(reference.resolve())
    config = list(cpt["config"])
    config[-3] = cpt["weight"]["emb_g.weight"].shape[0]
    net_g = SynthesizerTrnMs768NSFsid(*config, is_half=False)
    del net_g.enc_q
    net_g.load_state_dict(cpt["weight"], strict=False)
    net_g = net_g.eval().float()

    class Config:
        x_pad, x_query, x_center, x_max, is_half, device = 1, 6, 38, 41, False, "cpu"

    pipe = Pipeline(config[-1], Config())
    audio = clip.copy()
    peak = np.abs(audio).max() / 0.95
    if peak > 1:
        audio /= peak
    result: dict[str, np.ndarray] = {"input_int16": clip16}
    for method, key in SETTINGS:
        with zero_noise():
            y = pipe.pipeline(
                HubertStandIn(hubert),
                net_g,
                0,
                audio.copy(),
                f"fixture-{method}-{key}",
                [0, 0, 0],
                key,
                method,
                str(index_path),
                INDEX_RATE,
                1,
                FILTER_RADIUS,
                config[-1],
                0,
                RMS_MIX_RATE,
                "v2",
                PROTECT,
            )
        result[f"vc_{method}_{key}"] = np.asarray(y, np.int16)
        print(f"conversion {method} key {key}: {len(y)} samples at {config[-1]} Hz, peak {np.abs(y).max()}")

    feature_input = _feature_input_class(reference, lambda path, sr: segments[int(path)])()
    for method in TRAINING_METHODS:
        for i in range(len(segments)):
            f0 = np.asarray(feature_input.compute_f0(str(i), method), np.float64)
            result[f"train_{method}_{i}"] = f0.astype(np.float32)
            print(f"training pitch {method} segment {i}: {len(f0)} frames, {np.mean(f0 > 0):.0%} voiced")
    os.chdir(repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, allow_pickle=True, **result)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", type=Path, required=True, help="the reference's tree (branch 20240604)")
    p.add_argument("--out", type=Path, default=FIXTURE)
    args = p.parse_args(argv)
    make_fixture(args.reference, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
