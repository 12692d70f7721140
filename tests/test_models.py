"""The RVC networks: exact parameter names/shapes of the reference, training and inference on tiny configs."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from infer.lib.config import RVCConfig, load_config
from infer.lib.losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_loss
from infer.lib.mel import MelTransform, mel_spectrogram, spec_to_mel, spectrogram
from infer.lib.models import build_discriminator, build_generator
from infer.lib.models.attentions import _band_to_full, _full_to_band
from infer.lib.models.commons import rand_slice_segments, slice_segments
from infer.lib.models.layers import WNConv1d, WNConv2d, WNConvTranspose1d
from infer.lib.models.nsf import sine_excitation


def _short(cfg: RVCConfig, frames: int = 4) -> RVCConfig:
    """A tiny config with a short training segment (keeps the full-size discriminator cheap on CPU)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, segment_size=frames * cfg.data.hop_length))


@pytest.fixture(scope="module")
def disc_v2():
    """One full-size v2 discriminator shared by the tests (building it is the costly part on CPU)."""
    torch.manual_seed(0)
    return build_discriminator("v2")


@pytest.fixture(scope="module")
def manifest(reference_dir):
    return json.loads((reference_dir / "rvc_state_dicts.json").read_text())


VARIANTS = [f"G_{v}_{sr}_{f}" for v in ("v1", "v2") for sr in ("32k", "40k", "48k") for f in ("f0", "nof0")]


@pytest.mark.parametrize("name", VARIANTS + ["D_v1", "D_v2"])
def test_state_dict_matches_reference_manifest(manifest, name):
    ref = manifest[name]
    net: torch.nn.Module
    with torch.device("meta"):
        if name.startswith("G_"):
            _, version, sr, f0 = name.split("_")
            net = build_generator(load_config(version, sr), f0 == "f0")
        else:
            net = build_discriminator(name[2:])
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert sorted(ours) == sorted(ref["state_dict"])
    assert {k: v for k, v in ours.items() if ref["state_dict"][k] != v} == {}
    assert sum(p.numel() for p in net.parameters()) == ref["n_params"]


def _batch(cfg: RVCConfig, use_f0: bool, b: int = 2, t: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    phone = torch.randn(b, t, cfg.content_dim, generator=g)
    lengths = torch.tensor([t] + [t - 3] * (b - 1))
    pitch = torch.randint(1, 256, (b, t), generator=g) if use_f0 else None
    pitchf = (100 + 200 * torch.rand(b, t, generator=g)) if use_f0 else None
    wave = 0.3 * torch.randn(b, t * cfg.data.hop_length, generator=g)
    return phone, lengths, pitch, pitchf, wave


@pytest.mark.parametrize(
    ("version", "sr", "use_f0", "with_d"), [("v2", "40k", True, True), ("v1", "32k", False, False)]
)
def test_tiny_training_step_gives_finite_losses_and_gradients(tiny_config, disc_v2, version, sr, use_f0, with_d):
    """Generator + discriminator step as the training loop does it (the full-size D only once: CPU time)."""
    torch.manual_seed(0)
    cfg = _short(tiny_config(version, sr))
    net_g = build_generator(cfg, use_f0)
    net_d = disc_v2 if with_d else None
    phone, lengths, pitch, pitchf, wave = _batch(cfg, use_f0)
    spec = spectrogram(wave, cfg.data)
    assert spec.shape == (2, cfg.data.spec_channels, phone.shape[1])
    sid = torch.zeros(2, dtype=torch.long)
    y_hat, ids, x_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q) = net_g(
        phone, lengths, pitch, pitchf, spec, lengths, sid
    )
    assert y_hat.shape == (2, 1, cfg.train.segment_size)
    assert ids.dtype == torch.long and bool(((ids >= 0) & (ids + cfg.segment_frames <= lengths)).all())
    assert x_mask.shape == z_mask.shape == (2, 1, phone.shape[1])
    hop = cfg.data.hop_length
    y = slice_segments(wave, ids * hop, cfg.train.segment_size).unsqueeze(1)

    loss_gen = feature = torch.zeros(())
    if net_d is not None:
        y_d_r, y_d_g, _, _ = net_d(y, y_hat.detach())
        loss_d, r_losses, g_losses = discriminator_loss(y_d_r, y_d_g)
        assert len(r_losses) == len(g_losses) == len(net_d.discriminators)
        loss_d.backward()
        assert torch.isfinite(loss_d)
        assert all(torch.isfinite(p.grad).all() for p in net_d.parameters() if p.grad is not None)
        net_d.zero_grad()
        _, y_d_g, fmap_r, fmap_g = net_d(y, y_hat)
        loss_gen, _ = generator_loss(y_d_g)
        feature = feature_loss(fmap_r, fmap_g)
    y_mel = slice_segments(spec_to_mel(spec, cfg.data), ids, cfg.segment_frames)
    y_hat_mel = mel_spectrogram(y_hat.squeeze(1), cfg.data)
    assert y_mel.shape == y_hat_mel.shape
    losses = [
        loss_gen,
        feature,
        cfg.train.c_mel * mel_loss(y_mel, y_hat_mel),
        cfg.train.c_kl * kl_loss(z_p, logs_q, m_p, logs_p, z_mask),
    ]
    assert all(torch.isfinite(x) and x.dim() == 0 for x in losses)
    sum(losses, torch.zeros(())).backward()
    grads = {n: p.grad for n, p in net_g.named_parameters() if p.grad is not None}
    assert all(torch.isfinite(g).all() for g in grads.values())
    # every part of the generator used in training receives gradient (the flow's zero-initialised `post` too)
    for name in ("enc_p.emb_phone.weight", "enc_q.pre.weight", "flow.flows.0.post.weight", "dec.conv_pre.weight"):
        assert name in grads and grads[name].abs().sum() > 0, name
    if use_f0:
        assert grads["enc_p.emb_pitch.weight"].abs().sum() > 0
        assert grads["dec.m_source.l_linear.weight"].abs().sum() > 0


@pytest.mark.parametrize(("version", "sr", "use_f0"), [("v1", "48k", True), ("v2", "32k", False), ("v2", "40k", True)])
def test_infer_returns_frames_times_hop_samples(tiny_config, version, sr, use_f0):
    cfg = tiny_config(version, sr)
    net = build_generator(cfg, use_f0).eval()
    phone, lengths, pitch, pitchf, _ = _batch(cfg, use_f0, b=1, t=23)
    audio, x_mask, (z, z_p, m_p, logs_p) = net.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))
    assert audio.shape == (1, 1, 23 * cfg.data.hop_length)
    assert torch.isfinite(audio).all() and audio.abs().max() <= 1
    assert z.shape == (1, cfg.model.inter_channels, 23)
    tail, _, _ = net.infer(phone, lengths, pitch, pitchf, torch.tensor([0]), rate=0.5)
    assert tail.shape == (1, 1, 11 * cfg.data.hop_length)


def test_weight_norm_names_and_removal(tiny_config):
    """Classic names in state_dict; the parametrizations form loads; folding the norm keeps the output."""
    cfg = tiny_config("v2", "40k")
    torch.manual_seed(1)
    a = build_generator(cfg, True).eval()
    sd = a.state_dict()
    assert "dec.ups.0.weight_g" in sd and "dec.ups.0.weight_v" in sd and "dec.ups.0.weight" not in sd
    renamed = {
        k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        ): v
        for k, v in sd.items()
    }
    assert any("parametrizations" in k for k in renamed)
    torch.manual_seed(2)
    b = build_generator(cfg, True).eval()
    b.load_state_dict(renamed)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sd.items())

    phone, lengths, pitch, pitchf, _ = _batch(cfg, True, b=1, t=9)
    torch.manual_seed(3)
    before = a.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))[0]
    a.remove_weight_norm()
    assert "dec.ups.0.weight" in a.state_dict() and "dec.ups.0.weight_g" not in a.state_dict()
    torch.manual_seed(3)
    after = a.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))[0]
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    # a folded model still accepts classic g/v weights
    b.remove_weight_norm()
    b.load_state_dict(sd)
    torch.manual_seed(3)
    torch.testing.assert_close(
        b.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))[0], before, atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize(
    ("wn", "plain", "shape", "kwargs"),
    [
        (lambda: WNConv1d(4, 6, 3, padding=1), lambda: torch.nn.Conv1d(4, 6, 3, padding=1), (2, 4, 9), {}),
        (lambda: WNConv2d(2, 3, (3, 1), (2, 1)), lambda: torch.nn.Conv2d(2, 3, (3, 1), (2, 1)), (2, 2, 9, 4), {}),
        (
            lambda: WNConvTranspose1d(6, 4, 4, 2, padding=1),
            lambda: torch.nn.ConvTranspose1d(6, 4, 4, 2, padding=1),
            (2, 6, 9),
            {"output_size": [19]},
        ),
    ],
)
def test_weight_norm_layers_compute_their_torch_convolution(wn, plain, shape, kwargs):
    """A weight-normalised layer is its torch convolution with weight g * v / |v| (before and after folding)."""
    torch.manual_seed(0)
    layer, ref = wn(), plain()
    x = torch.randn(*shape)
    with torch.no_grad():
        ref.weight.copy_(layer.current_weight())
        ref.bias.copy_(layer.bias)
    torch.testing.assert_close(layer(x, **kwargs), ref(x, **kwargs))
    layer.remove_weight_norm()
    assert {k for k, _ in layer.named_parameters()} == {"weight", "bias"}
    torch.testing.assert_close(layer(x, **kwargs), ref(x, **kwargs))


def _band_to_full_direct(rel: torch.Tensor, w: int) -> torch.Tensor:
    t = rel.shape[2]
    out = torch.zeros(*rel.shape[:2], t, t)
    for i in range(t):
        for j in range(t):
            if abs(j - i) <= w:
                out[:, :, i, j] = rel[:, :, i, j - i + w]
    return out


def _full_to_band_direct(full: torch.Tensor, w: int) -> torch.Tensor:
    t = full.shape[2]
    out = torch.zeros(*full.shape[:2], t, 2 * w + 1)
    for i in range(t):
        for r in range(2 * w + 1):
            if 0 <= i + r - w < t:
                out[:, :, i, r] = full[:, :, i, i + r - w]
    return out


@pytest.mark.parametrize("t", [1, 2, 7, 12])
def test_relative_position_skews_match_direct_definition(t):
    torch.manual_seed(t)
    w = 3
    rel = torch.randn(2, 2, t, 2 * w + 1)
    torch.testing.assert_close(_band_to_full(rel, w), _band_to_full_direct(rel, w))
    square = torch.randn(2, 2, t, t)
    torch.testing.assert_close(_full_to_band(square, w), _full_to_band_direct(square, w))


def test_slice_segments_reads_zeros_past_the_end() -> None:
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
    out = slice_segments(x, torch.tensor([2, 7]), 4)
    assert torch.equal(out[0], x[0, :, 2:6])
    assert torch.equal(out[1, :, :3], x[1, :, 7:10]) and not out[1, :, 3].any()  # zero past the end


def test_segment_slicing_stays_inside_valid_frames():
    x = torch.arange(2 * 3 * 20, dtype=torch.float32).reshape(2, 3, 20)
    s = slice_segments(x, torch.tensor([0, 5]), 4)
    torch.testing.assert_close(s[1], x[1, :, 5:9])
    torch.testing.assert_close(slice_segments(x[:, 0], torch.tensor([2, 16]), 4)[1], x[1, 0, 16:20])
    lengths = torch.tensor([20, 6])
    for _ in range(20):
        seg, ids = rand_slice_segments(x, lengths, 4)
        assert bool((ids + 4 <= lengths).all()) and bool((ids >= 0).all())
        torch.testing.assert_close(seg[1], x[1, :, ids[1] : ids[1] + 4])
    # shorter than a segment: starts at 0, zero padded
    seg, ids = rand_slice_segments(x[:, :, :3], torch.tensor([3, 3]), 4)
    assert ids.tolist() == [0, 0] and seg.shape == (2, 3, 4) and bool((seg[:, :, 3] == 0).all())


def test_sine_excitation_frequency_phase_continuity_and_unvoiced_noise():
    sr, upp = 40000, 400
    f0 = torch.full((1, 50), 220.0)
    f0[:, 30:] = 0.0
    e = sine_excitation(f0, upp, sr, sine_amp=0.1, noise_std=0.0)[0].numpy()
    assert e.shape == (50 * upp,)
    voiced = e[: 30 * upp]
    spec = np.abs(np.fft.rfft(voiced * np.hanning(len(voiced))))
    assert abs(np.argmax(spec) * sr / len(voiced) - 220.0) < 2.0
    # continuous across frame boundaries: no jump bigger than one sample's phase step
    max_step = 0.1 * 2 * math.pi * 220.0 / sr
    assert np.abs(np.diff(voiced)).max() <= max_step * 1.01
    np.testing.assert_allclose(voiced[:upp], 0.1 * np.sin(2 * np.pi * 220.0 * np.arange(1, upp + 1) / sr), atol=1e-5)
    assert 0.02 < e[30 * upp :].std() < 0.045  # unvoiced: N(0, sine_amp / 3)


def test_spectrogram_and_mel_match_librosa(tiny_config):
    import librosa

    data = tiny_config("v2", "40k").data
    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal(20 * data.hop_length)).astype(np.float32)
    spec = spectrogram(torch.from_numpy(y)[None], data)[0].numpy()
    pad = (data.filter_length - data.hop_length) // 2
    ref = np.abs(
        librosa.stft(
            np.pad(y, pad, mode="reflect"),
            n_fft=data.filter_length,
            hop_length=data.hop_length,
            win_length=data.win_length,
            window="hann",
            center=False,
        )
    )
    assert spec.shape == ref.shape == (data.spec_channels, 20)
    np.testing.assert_allclose(spec, np.sqrt(ref**2 + 1e-6), rtol=1e-3, atol=1e-3)
    mel = mel_spectrogram(torch.from_numpy(y)[None], data)[0].numpy()
    basis = librosa.filters.mel(
        sr=data.sampling_rate, n_fft=data.filter_length, n_mels=data.n_mel_channels, fmin=data.mel_fmin
    )
    np.testing.assert_allclose(mel, np.log(np.maximum(basis @ np.sqrt(ref**2 + 1e-6), 1e-5)), atol=2e-3)
    # caches live in the transform instance, per device and dtype
    t = MelTransform(data)
    assert t.mel_basis(torch.device("cpu")) is t.mel_basis(torch.device("cpu"))
    assert t.window(torch.device("cpu"), torch.float64).dtype == torch.float64


def test_discriminator_batches_real_and_fake_like_separate_passes(disc_v2):
    torch.manual_seed(0)
    d = disc_v2
    y, y_hat = torch.randn(1, 1, 700), torch.randn(1, 1, 700)
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = d(y, y_hat)
    assert len(y_d_rs) == len(fmap_gs) == 9
    for sub, r, g, fr in zip(d.discriminators, y_d_rs, y_d_gs, fmap_rs):
        with torch.no_grad():
            r_alone, fmap_alone = sub(y)
            g_alone = sub(y_hat)[0]
        torch.testing.assert_close(r, r_alone, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(g, g_alone, atol=1e-5, rtol=1e-4)
        assert [f.shape for f in fr] == [f.shape for f in fmap_alone]


def test_losses_on_known_values():
    ones, zeros = [torch.ones(2, 3)], [torch.zeros(2, 3)]
    total, r, g = discriminator_loss(ones, zeros)
    assert float(total) == 0.0 and float(r[0]) == 0.0 and float(g[0]) == 0.0
    total, _, _ = discriminator_loss(zeros, ones)
    assert float(total) == 2.0
    assert float(generator_loss(zeros)[0]) == 1.0
    assert float(feature_loss([[torch.ones(2)]], [[torch.zeros(2)]])) == 2.0
    z = torch.zeros(1, 2, 3)
    mask = torch.ones(1, 1, 3)
    assert float(kl_loss(z, z, z, z, mask)) == pytest.approx(-0.5 * 2)  # -0.5 per channel summed, / frames
    assert float(mel_loss(torch.ones(1, 2, 3), torch.zeros(1, 2, 3))) == 1.0


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_nsf_decoder_without_autograd_gives_the_same_numbers_and_leaves_its_input(resblock):
    """Without autograd the decoder works in place on its own intermediates: same output, input untouched."""
    from infer.lib.models.nsf import Generator

    dilations = ((1, 3, 5), (1, 3, 5)) if resblock == "1" else ((1, 3), (1, 3))
    torch.manual_seed(0)
    dec = Generator(8, resblock, (3, 5), dilations, (4, 2), 16, (8, 4), gin_channels=4, nsf_sample_rate=16000)
    x, g = torch.randn(1, 8, 20), torch.randn(1, 4, 1)
    f0 = torch.full((1, 20), 140.0)
    f0[:, 12:] = 0.0
    x_before = x.clone()

    def run(ctx):
        torch.manual_seed(1)  # the source's noise
        with ctx():
            return dec(x, f0, g)

    with_grad = run(torch.enable_grad)
    assert with_grad.requires_grad
    with_grad.square().sum().backward()  # the training path stays differentiable
    assert all(p.grad is not None for p in dec.resblocks.parameters())
    for ctx in (torch.no_grad, torch.inference_mode):
        out = run(ctx)
        assert out.shape == (1, 1, 20 * 8)
        assert torch.equal(out, with_grad.detach())
    assert torch.equal(x, x_before)
