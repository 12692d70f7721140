"""MossFormer2 enhancer: loading path with a stand-in checkpoint in the real layout, refusals, trimming."""

from __future__ import annotations

import logging

import librosa
import numpy as np
import pytest
import torch

from infer.lib.audio import load_audio
from infer.lib.enhance import (
    CHECKPOINT_FILE,
    POINTER_FILE,
    AudioEnhancer,
    build_mossformer2_se_48k,
    get_enhancer,
    load_mossformer2,
    mossformer2_dir,
    trim_silence,
)
from infer.lib.errors import WeightsError
from infer.lib.standin import STANDIN_KEY
from tools.standin_writers import write_standin_mossformer2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The CPU test machines are shared: one torch thread avoids oversubscription."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    d = mossformer2_dir(tmp_path_factory.mktemp("weights"))
    write_standin_mossformer2(d)
    return d


@pytest.fixture(scope="module")
def enhancer(standin_dir):
    return AudioEnhancer(standin_dir, chunk_s=0.5, overlap_s=0.1)


def test_standin_is_in_the_real_layout(standin_dir):
    assert standin_dir.parts[-2:] == ("mossformer2", "MossFormer2_SE_48K")
    assert (standin_dir / POINTER_FILE).read_text().splitlines()[0] == CHECKPOINT_FILE
    ckpt = torch.load(standin_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"model", "epoch", "step", STANDIN_KEY}
    expected = build_mossformer2_se_48k().state_dict()
    assert {k: tuple(v.shape) for k, v in ckpt["model"].items()} == {k: tuple(v.shape) for k, v in expected.items()}
    assert sum(v.numel() for v in ckpt["model"].values()) > 55_000_000  # the full-size network
    # deterministic: the same (key, shape) always gives the same numbers
    from tools.standin_writers import deterministic_tensor

    k = "mossformer.conv1d_encoder.weight"
    assert torch.equal(ckpt["model"][k], deterministic_tensor(k, tuple(ckpt["model"][k].shape)))


def test_loading_uses_the_file_weights_and_warns(standin_dir, enhancer, caplog):
    assert enhancer.is_standin
    ckpt = torch.load(standin_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)["model"]
    for name, p in enhancer.model.named_parameters():
        assert torch.equal(p.detach(), ckpt[name]), name
    with caplog.at_level(logging.WARNING, logger="rvc"):
        load_mossformer2(standin_dir)
    assert "stand-in" in caplog.text


def test_module_prefixed_checkpoint_loads(standin_dir, tmp_path):
    ckpt = torch.load(standin_dir / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    d = tmp_path / "ddp"
    d.mkdir()
    # as a DDP training run saves it, from a library version without the computed tables, with an extra key
    state = {
        f"module.{k}": v for k, v in ckpt["model"].items() if "rotary_pos_emb.freqs" not in k and "inv_freq" not in k
    }
    state["module.extra.step_counter"] = torch.tensor(7)
    torch.save({"model": state, "epoch": 3}, d / "model.ckpt-3-100.pt")
    (d / POINTER_FILE).write_text("model.ckpt-3-100.pt\n")
    model, standin = load_mossformer2(d)
    assert standin is None  # no marker in this file: treated as real weights
    fresh = build_mossformer2_se_48k()
    assert torch.equal(model.mossformer.pos_enc.inv_freq, fresh.mossformer.pos_enc.inv_freq)  # computed, kept
    # a trained tensor missing is refused
    del state["module.mossformer.conv1d_encoder.weight"]
    torch.save({"model": state}, d / "model.ckpt-3-100.pt")
    with pytest.raises(WeightsError, match="1 trained tensors missing"):
        load_mossformer2(d)
    torch.save({"model": {f"module.{k}": v for k, v in ckpt["model"].items()}}, d / "model.ckpt-3-100.pt")
    model, _ = load_mossformer2(d)
    assert torch.equal(model.mossformer.conv1d_encoder.weight, ckpt["model"]["mossformer.conv1d_encoder.weight"])


def test_missing_or_wrong_weights_are_refused(tmp_path, standin_dir):
    with pytest.raises(WeightsError, match="missing"):
        AudioEnhancer(tmp_path / "nowhere")
    d = tmp_path / "ck"
    d.mkdir()
    with pytest.raises(WeightsError, match=POINTER_FILE):
        load_mossformer2(d)
    (d / POINTER_FILE).write_text("../../etc/passwd\n")
    with pytest.raises(WeightsError, match="does not name"):
        load_mossformer2(d)
    (d / POINTER_FILE).write_text(CHECKPOINT_FILE + "\n")
    with pytest.raises(WeightsError, match="is missing"):
        load_mossformer2(d)
    (d / CHECKPOINT_FILE).write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(WeightsError, match="cannot read"):
        load_mossformer2(d)
    torch.save({"model": {"mossformer.norm.weight": torch.ones(3)}}, d / CHECKPOINT_FILE)
    with pytest.raises(WeightsError, match="does not match"):
        load_mossformer2(d)


def test_enhance_short_clip(enhancer, joe_1min):
    sr = 40000
    audio = load_audio(joe_1min / "joe_002.wav", sr)[: int(0.4 * sr)]  # shorter than one chunk
    torch.manual_seed(0)
    out = enhancer.enhance(audio, sr)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and np.abs(out).max() > 0


def test_enhance_long_input_in_chunks_keeps_silence_silent(enhancer, joe_1min):
    """1.3 s at 48 kHz in 0.5 s chunks: length kept, and a silent stretch stays silent across chunk joins."""
    sr = 48000
    speech = load_audio(joe_1min / "joe_003.wav", sr)
    audio = np.concatenate([speech[: sr // 2], np.zeros(int(0.4 * sr), np.float32), speech[sr // 2 : int(0.9 * sr)]])
    torch.manual_seed(0)
    out = enhancer.enhance_48k(audio)
    assert out.shape == audio.shape and np.isfinite(out).all()
    # the mask multiplies the input spectrum: away from the speech edges silence stays (near) zero
    quiet = out[int(0.6 * sr) : int(0.8 * sr)]
    assert np.abs(quiet).max() < 1e-3 * max(1e-6, np.abs(out).max())
    assert np.abs(out[: sr // 2]).max() > 0 and np.abs(out[int(0.9 * sr) :]).max() > 0


def test_one_enhancer_per_process(standin_dir):
    a = get_enhancer(standin_dir)
    assert get_enhancer(standin_dir) is a


def test_trim_silence_keeps_inner_pauses(joe_1min):
    sr = 16000
    speech = load_audio(joe_1min / "joe_000.wav", sr)[: 2 * sr]
    speech = speech[np.argmax(np.abs(speech) > 0.05) :][:sr]  # starts with sound
    speech = speech[: len(speech) - np.argmax(np.abs(speech[::-1]) > 0.05)]  # ends with sound
    z = lambda s: np.zeros(int(s * sr), np.float32)  # noqa: E731
    audio = np.concatenate([z(0.7), speech, z(0.6), speech, z(0.9)])
    out = trim_silence(audio, sr, top_db=40)
    inner = 2 * len(speech) + int(0.6 * sr)
    assert inner - 0.02 * sr <= len(out) <= inner + 0.1 * sr  # edges gone (to a frame), pause kept
    assert trim_silence(np.zeros(sr, np.float32), sr).size == 0


@pytest.mark.slow
def test_enhance_long_file_default_chunks(standin_dir, joe_1min):
    """A 30 s file with the default 10 s chunks: output length and finiteness (full-size model on CPU)."""
    sr = 40000
    audio = np.concatenate([load_audio(p, sr) for p in sorted(joe_1min.glob("*.wav"))[:2]])[: 30 * sr]
    out = get_enhancer(standin_dir).enhance(audio, sr)
    assert out.shape == audio.shape and np.isfinite(out).all()


@pytest.mark.parametrize("sr", [40000, 48000, 32000, 16000])
@pytest.mark.parametrize("top_db", [40.0, 20.0, 60.0])
def test_trim_silence_cuts_where_librosa_trim_does(speech_quiet_ends, sr, top_db):
    speech = speech_quiet_ends
    x = speech if sr == 40000 else librosa.resample(speech, orig_sr=40000, target_sr=sr)
    frame = max(64, int(2 ** round(np.log2(2048 * sr / 44100))))
    ref, _ = librosa.effects.trim(x, top_db=top_db, frame_length=frame, hop_length=frame // 4)
    got = trim_silence(x, sr, top_db)
    assert got.shape == ref.shape and np.shares_memory(got, x)
    assert np.array_equal(got, ref)
    assert 0 < got.shape[0] < x.shape[0]  # the quiet ends really were cut


def test_trim_silence_edge_cases():
    assert trim_silence(np.zeros(1000, np.float32), 40000).shape == (0,)
    assert trim_silence(np.zeros(0, np.float32), 40000).shape == (0,)
    tone = np.sin(np.arange(40000) / 10).astype(np.float32)
    assert trim_silence(tone, 40000).shape == tone.shape  # nothing quieter than the loudest frame
