"""Voice conversion: the algorithm's steps, then whole conversions with real tiny models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from infer.lib.errors import UserInputError
from infer.modules.vc.pipeline import (
    FRAME,
    ConvertParams,
    FeatureIndex,
    WindowConfig,
    high_pass,
    mix_rms,
    plan_windows,
    retrieve_features,
)
from infer.modules.vc.vc import pick_preview_excerpt, read_feature_index
from tests.support.training import make_tiny_config

SR16 = 16000


def _faiss_index(vectors: np.ndarray, ivf: int = 0):
    import faiss

    d = vectors.shape[1]
    if ivf:
        index = faiss.index_factory(d, f"IVF{ivf},Flat")
        index.train(vectors)
    else:
        index = faiss.IndexFlatL2(d)
    index.add(vectors)
    return index


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "bad",
    [
        {"index_rate": 1.5},
        {"protect": 0.7},
        {"rms_mix_rate": -0.1},
        {"resample_sr": 8000},
        {"f0_method": "yin"},
        {"f0_up_key": 60},
        {"speaker_id": -1},
        {"filter_radius": 9},
    ],
)
def test_params_refuse_bad_values_with_a_clear_message(bad):
    with pytest.raises(UserInputError) as e:
        ConvertParams(**bad)
    assert next(iter(bad)) in str(e.value)


# ------------------------------------------------------------------------------------ windows
def test_short_input_is_one_window():
    x = np.random.default_rng(0).normal(size=SR16 * 5).astype(np.float32)
    assert plan_windows(x, WindowConfig()) == [(0, 500)]


def test_long_input_splits_at_the_quiet_points():
    rng = np.random.default_rng(1)
    n = SR16 * 30
    x = rng.normal(0, 0.3, size=n).astype(np.float32)
    quiet = [int(8.3 * SR16), int(21.7 * SR16)]  # 50 ms of near-silence near each nominal split
    for q in quiet:
        x[q : q + 800] *= 1e-4
    w = WindowConfig(pad_s=0.5, query_s=2.0, center_s=10.0, max_s=12.0)
    spans = plan_windows(x, w)
    # tiles every frame, no gaps, no overlap
    assert spans[0][0] == 0 and spans[-1][1] == -(-n // FRAME)
    assert all(b == c for (_, b), (c, _) in zip(spans[:-1], spans[1:]))
    starts = [a * FRAME for a, _ in spans[1:]]
    assert len(starts) == 2
    for s, q in zip(starts, quiet):
        assert q - FRAME <= s <= q + 800, (s, q)


def test_high_pass_removes_rumble_and_keeps_speech_band():
    t = np.arange(SR16 * 2) / SR16
    low = np.sin(2 * np.pi * 20 * t)
    mid = np.sin(2 * np.pi * 300 * t)
    y_low, y_mid = high_pass(low.astype(np.float32)), high_pass(mid.astype(np.float32))
    core = slice(SR16 // 2, -SR16 // 2)
    assert np.std(y_low[core]) < 0.02 * np.std(low[core])
    assert abs(np.std(y_mid[core]) / np.std(mid[core]) - 1) < 0.01


# ------------------------------------------------------------------------------------ retrieval
def test_retrieval_weights_neighbours_by_inverse_square_distance():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    index = FeatureIndex(_faiss_index(vectors), vectors)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    got = retrieve_features(q, index)
    d2 = ((q[:, None, :] - vectors[None]) ** 2).sum(-1)  # squared distances, as faiss reports
    nn = np.argsort(d2, axis=1)[:, :8]
    w = 1.0 / np.take_along_axis(d2, nn, 1) ** 2
    want = (vectors[nn] * (w / w.sum(1, keepdims=True))[..., None]).sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # an exact match takes all the weight
    np.testing.assert_allclose(retrieve_features(vectors[3:4], index), vectors[3:4], atol=1e-5)


def test_retrieval_with_unfilled_neighbours_and_an_ivf_index(tmp_path):
    import faiss

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(400, 8)).astype(np.float32)
    path = tmp_path / "added_IVF10_Flat_nprobe_1_x_v1.index"
    faiss.write_index(_faiss_index(vectors, ivf=10), str(path))
    idx = read_feature_index(path)
    assert idx.size == 400 and idx.dim == 8
    assert sorted(map(tuple, idx.vectors.round(5))) == sorted(map(tuple, vectors.round(5)))
    got = retrieve_features(rng.normal(size=(50, 8)).astype(np.float32), idx)
    assert np.all(np.isfinite(got))


def test_not_an_index_file_is_refused(tmp_path):
    bad = tmp_path / "model.index"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(UserInputError, match="not a FAISS index"):
        read_feature_index(bad)


# ------------------------------------------------------------------------------------ loudness
def test_rms_mix_moves_the_envelope_towards_the_source():
    rng = np.random.default_rng(4)
    src = (rng.normal(size=SR16 * 4) * np.repeat([0.05, 0.4, 0.05, 0.4], SR16)).astype(np.float32)
    out_sr = 40000
    conv = (rng.normal(size=out_sr * 4) * 0.2).astype(np.float32)
    np.testing.assert_array_equal(mix_rms(src, conv.copy(), out_sr, 1.0), conv)
    y = mix_rms(src, conv.copy(), out_sr, 0.0)
    q, l2 = np.std(y[int(0.3 * out_sr) : int(0.7 * out_sr)]), np.std(y[int(1.3 * out_sr) : int(1.7 * out_sr)])
    assert l2 / q > 4  # the quiet/loud pattern of the source is copied


def test_preview_excerpt_is_the_loudest_stretch():
    x = np.zeros(SR16 * 20, np.float32)
    x[SR16 * 12 : SR16 * 15] = 0.5
    ex = pick_preview_excerpt(x, SR16, 4.0)
    assert len(ex) == SR16 * 4 and np.count_nonzero(ex) == SR16 * 3


# ==================================================================================== conversions
# Real networks and files: the published HuBERT architecture with stand-in values (the tiny stand-in's
# 16/32-dim features cannot feed an RVC generator, which takes 256/768), tiny generators exported in
# our small-model layout and rewritten in the RVC WebUI and Applio layouts, faiss indexes, pm pitch.


FAST: dict[str, Any] = {"f0_method": "pm", "seed": 0}


@pytest.fixture(scope="module")
def vc(standin_hubert):
    from infer.modules.vc import VC

    return VC(device="cpu", hubert_path=standin_hubert, window=WindowConfig(pad_s=0.2))


def _export(path: Path, version: str, sr: str, use_f0: bool, seed: int = 0) -> Path:
    from infer.lib.checkpoint import export_small_model
    from infer.lib.models.synthesizer import build_generator

    cfg = make_tiny_config(version, sr)
    torch.manual_seed(seed)
    g = build_generator(cfg, use_f0)
    return export_small_model(g.state_dict(), cfg, use_f0, path.stem, 1, 10, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "v2_40k_f0": _export(d / "v2_40k_f0.pth", "v2", "40k", True),
        "v1_32k_nof0": _export(d / "v1_32k_nof0.pth", "v1", "32k", False),
        "v1_48k_f0": _export(d / "v1_48k_f0.pth", "v1", "48k", True),
    }


def _joe(joe_1min: Path, i: int, start_s: float, seconds: float) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(sorted(joe_1min.glob("*.wav"))[i], dtype="float32")
    x = x[int(start_s * sr) : int((start_s + seconds) * sr)]
    return soxr.resample(x, sr, SR16).astype(np.float32)


@pytest.fixture(scope="module")
def speech(joe_1min) -> np.ndarray:
    """1 s of real speech at 16 kHz."""
    return _joe(joe_1min, 0, 2.0, 1.0)


def test_converts_every_variant_at_its_rate(vc, models, speech):
    for name, rate in (("v2_40k_f0", 40000), ("v1_32k_nof0", 32000), ("v1_48k_f0", 48000)):
        model = vc.load_model(models[name])
        assert model.sample_rate == rate and model.use_f0 == name.endswith("_f0")
        audio, got_rate = vc.convert(speech, SR16, models[name], **FAST)
        assert got_rate == rate and len(audio) == round(len(speech) * rate / SR16)
        assert audio.dtype == np.float32 and np.all(np.isfinite(audio)) and np.abs(audio).max() <= 0.99
        assert np.std(audio) > 1e-5
        again, _ = vc.convert(speech, SR16, models[name], **FAST)  # same seed, same output
        np.testing.assert_array_equal(audio, again)
    res, rate = vc.convert(speech, SR16, models["v2_40k_f0"], resample_sr=44100, **FAST)
    assert rate == 44100 and abs(len(res) - len(speech) * 44100 / SR16) <= 2
    # stereo input at 44.1 kHz ([T, 2]) is mixed down and resampled
    import soxr

    stereo = np.stack([soxr.resample(speech, SR16, 44100)] * 2, axis=1)
    out, _ = vc.convert(stereo, 44100, models["v1_32k_nof0"], **FAST)
    assert abs(len(out) - len(speech) * 2) <= 4


def _webui_layout(src: Path, dst: Path) -> Path:
    """The reference RVC WebUI small model: exactly weight/config/info/sr/f0/version."""
    obj = torch.load(src, map_location="cpu", weights_only=True)
    torch.save({k: obj[k] for k in ("weight", "config", "info", "sr", "f0", "version")}, dst)
    return dst


def _applio_layout(src: Path, dst: Path) -> Path:
    """Applio's extract_model layout: no 'info', sr in Hz, f0 a bool, its metadata keys, and the
    weight-norm tensors under torch's new `parametrizations` names."""
    obj = torch.load(src, map_location="cpu", weights_only=True)
    rename = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}
    weight = {}
    for k, v in obj["weight"].items():
        for old, new in rename.items():
            k = k.replace(old, new)
        weight[k] = v
    extra = {"epoch": 3, "step": 120, "creation_date": "2025-01-01T00:00:00", "model_hash": "0" * 64}
    extra |= {"overtrain_info": "None", "dataset_length": 59.7, "model_name": "joe", "author": None}
    extra |= {"embedder_model": "contentvec", "speakers_id": 1, "vocoder": "HiFi-GAN"}
    cfg = obj["config"]
    torch.save(
        {"weight": weight, "config": cfg, "sr": int(cfg[-1]), "f0": bool(obj["f0"]), "version": obj["version"]} | extra,
        dst,
    )
    return dst


def test_webui_and_applio_files_convert_like_ours(vc, models, speech, tmp_path):
    ours = models["v2_40k_f0"]
    want, _ = vc.convert(speech, SR16, ours, **FAST)
    for layout in (_webui_layout, _applio_layout):
        path = layout(ours, tmp_path / f"{layout.__name__}.pth")
        loaded = vc.load_model(path)
        assert (loaded.version, loaded.sample_rate, loaded.use_f0) == ("v2", 40000, True)
        got, rate = vc.convert(speech, SR16, path, **FAST)
        assert rate == 40000
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_models_are_cached_by_content_not_by_name(vc, models, tmp_path):
    import shutil

    first = vc.load_model(models["v1_32k_nof0"])
    copy = tmp_path / "renamed.pth"
    shutil.copy(models["v1_32k_nof0"], copy)
    second = vc.load_model(copy)
    assert second.net_g is first.net_g and second.path == copy
    _export(copy, "v1", "32k", False, seed=1)  # another model under the same name: loaded afresh
    third = vc.load_model(copy)
    assert third.net_g is not first.net_g and third.sha256 != first.sha256


@pytest.fixture(scope="module")
def v2_index(vc, joe_1min, tmp_path_factory) -> Path:
    """An index in the reference layout from the HuBERT v2 features of other speech than `speech`."""
    from infer.lib.index import build_index, write_index

    x = _joe(joe_1min, 1, 0.0, 5.0)
    with torch.inference_mode():
        feats = vc.hubert().extract(torch.from_numpy(x)[None], None, "v2")[0].float().numpy()
    index, info = build_index(feats, seed=0)
    name = f"added_IVF{info['n_ivf']}_Flat_nprobe_1_joe_v2.index"
    return write_index(index, tmp_path_factory.mktemp("index") / name)


class _Capture:
    """Records what a submodule of the real synthesizer receives (pre-hook) or returns (hook)."""

    def __init__(self, module: torch.nn.Module, output: bool = False) -> None:
        self.seen: list[torch.Tensor] = []
        if output:
            self.handle = module.register_forward_hook(lambda m, a, out: self.seen.append(out.detach().clone()))
        else:
            # the content encoder gets (phone, pitch, lengths): keep the real frames (on the CPU the
            # pipeline pads the synthesizer's input to a bucket of frames, masked by `lengths`)
            def pre(m: torch.nn.Module, a: tuple) -> None:
                x = a[0][:, : int(a[2].max())] if len(a) >= 3 and torch.is_tensor(a[2]) else a[0]
                self.seen.append(x.detach().clone())

            self.handle = module.register_forward_pre_hook(pre)

    def take(self) -> torch.Tensor:
        out = torch.cat(self.seen, dim=-1 if self.seen[0].dim() == 3 and self.seen[0].shape[1] == 1 else 1)
        self.seen = []
        return out

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def test_index_rate_changes_the_output_and_the_index_is_searched(vc, models, speech, v2_index):
    from infer.modules.vc import ConvertParams

    model = vc.load_model(models["v2_40k_f0"])
    with _Capture(model.net_g.enc_p) as content:
        plain = vc.convert_detailed(speech, SR16, model, None, ConvertParams(**FAST))
        c_plain = content.take()
        r0 = vc.convert_detailed(speech, SR16, model, v2_index, ConvertParams(index_rate=0.0, **FAST))
        c0 = content.take()
        r1 = vc.convert_detailed(speech, SR16, model, v2_index, ConvertParams(index_rate=1.0, protect=0.5, **FAST))
        c1 = content.take()
        vc.convert_detailed(speech, SR16, model, v2_index, ConvertParams(index_rate=1.0, protect=0.0, **FAST))
        cp = content.take()
    assert not r0.stats.index_used and r0.stats.index_searches == 0
    np.testing.assert_array_equal(r0.audio, plain.audio)  # rate 0 is exactly "no index"
    torch.testing.assert_close(c0, c_plain)
    assert r1.stats.index_used and r1.stats.index_searches >= len(speech) // 320 - 2
    assert len(r1.audio) == len(r0.audio) and not np.array_equal(r1.audio, r0.audio)
    # index_rate 1 (no protection): every frame the synthesizer gets is a blend of index vectors
    vectors = torch.from_numpy(vc.load_index(v2_index).features.vectors)
    frames = c1[0, ::2]  # HuBERT frames (upsampled x2)
    assert (frames - c0[0, ::2]).norm(dim=1).mean() > 0.3 * c0[0, ::2].norm(dim=1).mean()
    lo, hi = vectors.min(0).values, vectors.max(0).values
    assert bool(((frames >= lo - 1e-4) & (frames <= hi + 1e-4)).all())
    # protect 0 keeps the source features in unvoiced frames and the retrieved ones in voiced frames
    differs = (cp - c1).abs().amax(-1)[0] > 1e-5
    assert 0 < int(differs.sum()) < differs.numel()


def test_wrong_files_give_clear_errors(vc, models, speech, v2_index, tmp_path, standin_hubert):
    not_model = tmp_path / "song.pth"
    not_model.write_bytes(b"ID3\x04\x00" + bytes(300))
    with pytest.raises(UserInputError, match="song.pth"):
        vc.convert(speech, SR16, not_model, **FAST)
    pretrained = tmp_path / "f0G40k.pth"
    torch.save({"model": {"emb_g.weight": torch.zeros(1, 4)}}, pretrained)
    with pytest.raises(UserInputError, match="not an exported voice model"):
        vc.load_model(pretrained)
    with pytest.raises(UserInputError, match="does not exist"):
        vc.load_model(tmp_path / "missing.pth")
    with pytest.raises(UserInputError, match="hubert_base.pt is not a plain PyTorch weights file"):
        vc.load_model(standin_hubert)  # a fairseq checkpoint is not a voice model
    # a v1 model with a v2 index: refused before any work, naming both widths
    with pytest.raises(UserInputError, match=r"768-dim features \(a v2 index\).*is v1 and uses 256-dim"):
        vc.convert(speech, SR16, models["v1_48k_f0"], v2_index, **FAST)
    with pytest.raises(UserInputError, match="not a FAISS index"):
        vc.convert(speech, SR16, models["v1_48k_f0"], not_model, **FAST)
    with pytest.raises(UserInputError, match="speaker_id 500 is out of range: this model has 109"):
        vc.convert(speech, SR16, models["v1_48k_f0"], speaker_id=500, **FAST)
    with pytest.raises(UserInputError, match="too short"):
        vc.convert(speech[:100], SR16, models["v1_48k_f0"], **FAST)


def _pitch_hz(audio: np.ndarray, sr: int) -> tuple[float, float]:
    """Median f0 (Hz) of the voiced frames and the voiced share, measured by Praat."""
    import parselmouth

    p = parselmouth.Sound(audio.astype(np.float64), sr).to_pitch_ac(time_step=0.01, pitch_floor=50, pitch_ceiling=1100)
    f = p.selected_array["frequency"]
    return float(np.median(f[f > 0])) if np.any(f > 0) else 0.0, float(np.mean(f > 0))


def test_f0_up_key_12_doubles_the_pitch_of_the_nsf_excitation(vc, models):
    """The pitch the decoder is driven with, measured on its harmonic source signal.

    A random-weight generator does not pass its excitation through to the output (its output pitch is
    unrelated to the source), so the octave is measured where the pipeline's responsibility ends: the
    NSF source the real synthesizer builds from the pitch curve the pipeline hands it.
    """
    t = np.arange(SR16) / SR16
    tone = sum((0.3 / k * np.sin(2 * np.pi * 150.0 * k * t) for k in range(1, 6)), np.zeros_like(t)).astype(np.float32)
    assert abs(_pitch_hz(tone, SR16)[0] - 150.0) < 1.5
    model = vc.load_model(models["v2_40k_f0"])
    measured = {}
    hits = vc._memo.hits
    with _Capture(model.net_g.dec.m_source, output=True) as source:
        for key in (0, 12, -12, 7):
            vc.convert(tone, SR16, model, f0_up_key=key, **FAST)
            frames = len(tone) // 160 + 2 * vc.window.pad_frames  # the window; past it: bucket padding
            excitation = source.take()[0, 0, : frames * model.sample_rate // 100]
            measured[key], voiced = _pitch_hz(excitation.float().numpy(), model.sample_rate)
            assert voiced > 0.8
    assert vc._memo.hits >= hits + 6  # features and pitch were computed once, reused for every key
    assert abs(measured[0] - 150.0) / 150.0 < 0.02
    assert abs(measured[12] / measured[0] - 2.0) < 0.02
    assert abs(measured[-12] / measured[0] - 0.5) < 0.01
    assert abs(measured[7] / measured[0] - 2 ** (7 / 12)) < 0.02


def test_write_preview(vc, models, joe_1min, tmp_path):
    import soundfile as sf

    from infer.modules.vc import write_preview

    x, sr = sf.read(sorted(joe_1min.glob("*.wav"))[2], dtype="float32")
    out = tmp_path / "preview.wav"
    result = write_preview(out, models["v1_32k_nof0"], x, sr, vc=vc, seconds=1.5)
    info = sf.info(out)
    assert info.samplerate == 32000 and abs(info.duration - 1.5) < 0.01 and info.subtype == "PCM_16"
    assert result.to_dict()["model_sha256"] == vc.load_model(models["v1_32k_nof0"]).sha256


def _long_input(joe_1min: Path, path: Path, seconds: float) -> Path:
    """`seconds` of real speech (the joe_1min clips end to end, repeated as needed) at 22.05 kHz."""
    import soundfile as sf

    parts = [sf.read(p, dtype="float32") for p in sorted(joe_1min.glob("*.wav"))]
    sr = parts[0][1]
    x = np.concatenate([a for a, _ in parts])
    x = np.tile(x, int(np.ceil(seconds * sr / len(x))))[: int(seconds * sr)]
    sf.write(path, x, sr, subtype="PCM_16")
    return path


# The converter as `tools.convert` runs it, for peak-memory comparisons: without its glibc tuning that
# keeps freed blocks for reuse (`keep_freed_memory`), with blocks from 64 KiB up mapped on their own,
# one malloc arena and one thread, so that its peak resident memory is the memory in use, not what the
# allocator held on to from earlier windows.
STEADY_MEMORY = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
STEADY_MEMORY |= {"OMP_NUM_THREADS": "1"}
STEADY_CONVERT = (
    "import sys; import infer.modules.vc.pipeline as p; p.keep_freed_memory = lambda *a, **k: False; "
    "from tools.convert import main; sys.exit(main(sys.argv[1:]))"
)


def _cli(
    tmp_path: Path, model: Path, hubert: Path, src: Path, name: str, *extra: str, steady_memory: bool = False
) -> dict:
    import json
    import os

    out, report = tmp_path / f"{name}.wav", tmp_path / f"{name}.json"
    run = ["-c", STEADY_CONVERT] if steady_memory else ["-m", "tools.convert"]
    env = {**os.environ, **STEADY_MEMORY} if steady_memory else None
    cmd = [sys.executable, *run, "--model", str(model), "--input", str(src), "--output", str(out)]
    cmd += ["--hubert", str(hubert), "--f0-method", "pm", "--device", "cpu", "--seed", "0", "--report", str(report)]
    proc = subprocess.run(cmd + list(extra), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(report.read_text()) | {"out": out}


def test_cli_converts_in_windows(models, standin_hubert, joe_1min, tmp_path):
    import soundfile as sf

    src = _long_input(joe_1min, tmp_path / "in.wav", 9.0)
    r = _cli(
        tmp_path, models["v1_48k_f0"], standin_hubert, src, "out", "--window-seconds", "4", "--resample-sr", "22050"
    )
    info = sf.info(r["out"])
    assert info.samplerate == 22050 and abs(info.duration - 9.0) < 0.01 and info.subtype == "PCM_16"
    assert r["stats"]["windows"] == 3 and r["sample_rate"] == 22050 and r["params"]["f0_method"] == "pm"
    assert r["peak_rss_mib"] > 0


@pytest.mark.slow
def test_cli_converts_60s_in_windows_with_bounded_memory(models, standin_hubert, joe_1min, tmp_path):
    """A 60 s input goes through in 8 s windows; its peak memory is about that of a 30 s input.

    The working set is one window (up to center + 2 query + 2 pad = 12.7 s of audio through HuBERT
    base); memory kept from window to window would add about 100 MiB per window (+400 MiB for the
    four more windows here). The peaks are read with `steady_memory`: the memory in use.
    """
    import soundfile as sf

    model = models["v2_40k_f0"]
    src30, src60 = (_long_input(joe_1min, tmp_path / f"in{s}.wav", float(s)) for s in (30, 60))
    windows = ("--window-seconds", "8")
    short = _cli(tmp_path, model, standin_hubert, src30, "short", *windows, steady_memory=True)
    long = _cli(tmp_path, model, standin_hubert, src60, "long", *windows, "--resample-sr", "44100", steady_memory=True)
    info = sf.info(long["out"])
    assert info.samplerate == 44100 and abs(info.duration - 60.0) < 0.01
    assert long["stats"]["windows"] >= 7 and short["stats"]["windows"] >= 3
    assert long["stats"]["input_seconds"] == pytest.approx(60.0, abs=1e-3)
    # twice the input and the windows, the same working set (plus a few copies of the audio: ~10 MiB;
    # the longest window of each input differs by a second or two)
    assert long["peak_rss_mib"] - short["peak_rss_mib"] < 100, (short["peak_rss_mib"], long["peak_rss_mib"])
    print(f"peak RSS: 30 s {short['peak_rss_mib']} MiB, 60 s {long['peak_rss_mib']} MiB")


def test_cli_refuses_wrong_files_with_exit_code_2(models, standin_hubert, tmp_path, speech):
    import soundfile as sf

    src = tmp_path / "in.wav"
    sf.write(src, speech, SR16)
    bad = tmp_path / "voice.index"
    bad.write_text("not an index")
    cmd = [sys.executable, "-m", "tools.convert", "--model", str(models["v1_32k_nof0"]), "--index", str(bad)]
    cmd += ["--input", str(src), "--output", str(tmp_path / "o.wav"), "--hubert", str(standin_hubert)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a FAISS index" in proc.stdout + proc.stderr
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.slow
def test_converts_with_a_model_our_training_just_produced(trained_run, tmp_path, speech, vc):
    """The session's whole tiny training (2 epochs on joe_1min), then its zip's model and index."""
    import zipfile

    import soundfile as sf

    from infer.modules.vc import ConvertParams

    root = tmp_path
    with zipfile.ZipFile(trained_run.zip) as z:
        z.extractall(root / "zip")
        preview = root / "zip" / "preview.wav"
        assert preview.is_file() and sf.info(preview).samplerate == 40000  # written by write_preview
    model = vc.load_model(root / "zip" / "joe.pth")
    index = next((root / "zip").glob("added_IVF*_joe_v2.index"))
    assert (model.version, model.sample_rate, model.use_f0) == ("v2", 40000, True)
    with _Capture(model.net_g.enc_p) as content:
        r0 = vc.convert_detailed(speech, SR16, model, index, ConvertParams(index_rate=0.0, **FAST))
        c0 = content.take()
        r1 = vc.convert_detailed(speech, SR16, model, index, ConvertParams(index_rate=1.0, **FAST))
        c1 = content.take()
    assert r1.stats.index_searches > 0 and not torch.equal(c0, c1) and not np.array_equal(r0.audio, r1.audio)
    assert len(r1.audio) == round(len(speech) * 40000 / SR16) and np.std(r1.audio) > 1e-4
