"""Training: data loading, bucketing, collate, slicing, settings; resume and DDP on a real experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.modules.train.batch_size import auto_batch_size
from infer.modules.train.data import BucketBatchSampler, Sample, collate, load_sample, split_holdout
from infer.modules.train.filelist import FilelistEntry
from infer.modules.train.train import TrainSettings
from tests.support.training import tiny_train_config

# ------------------------------------------------------------------------------------------ data


def test_bucket_sampler_ranks_get_equal_full_batches_of_one_bucket() -> None:
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(20, 900, 57))
    bounds = (75, 150, 225, 300, 375, 450, 525, 600, 675, 900)
    per_rank = [list(BucketBatchSampler(lengths, 3, bounds, num_replicas=2, rank=r, seed=5)) for r in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == len(BucketBatchSampler(lengths, 3, bounds, 2, 0, seed=5))
    bucket_of = {
        i: next(k for k in range(9) if bounds[k] < n <= bounds[k + 1]) for i, n in enumerate(lengths) if n > 75
    }
    seen = set()
    for batches in per_rank:
        for b in batches:
            assert len(b) == 3
            assert len({bucket_of[i] for i in b}) == 1  # similar lengths only
            seen.update(b)
    assert seen == set(bucket_of)  # every usable segment, none of the short ones
    dropped = BucketBatchSampler(lengths, 3, bounds, seed=5).dropped
    assert sorted(dropped) == sorted(i for i, n in enumerate(lengths) if n <= 75)


def test_bucket_sampler_shuffles_per_epoch_deterministically() -> None:
    lengths = [370] * 20 + [200] * 7
    s = BucketBatchSampler(lengths, 4, seed=1)
    s.set_epoch(1)
    e1 = list(s)
    s.set_epoch(2)
    e2 = list(s)
    s.set_epoch(1)
    assert list(s) == e1 and e1 != e2
    assert len(e1) == 5 + 2  # 20 -> 5 batches, 7 padded to 8 -> 2 batches


def test_bucket_sampler_refuses_all_short() -> None:
    with pytest.raises(UserInputError, match="0.75 s"):
        BucketBatchSampler([10, 20, 70], 2)


def _sample(t: int, dim: int = 4, hop: int = 10, f0: bool = True) -> Sample:
    return Sample(
        spec=torch.rand(5, t),
        wave=torch.rand(1, t * hop),
        phone=torch.rand(t, dim),
        pitch=torch.randint(1, 255, (t,)) if f0 else None,
        pitchf=torch.rand(t) * 300 if f0 else None,
        sid=0,
    )


def test_collate_pads_longest_first() -> None:
    a, b, c = _sample(7), _sample(12), _sample(9)
    batch = collate([a, b, c])
    assert batch.spec.shape == (3, 5, 12) and batch.wave.shape == (3, 1, 120) and batch.phone.shape == (3, 12, 4)
    assert batch.spec_lengths.tolist() == [12, 9, 7] == batch.phone_lengths.tolist()
    assert batch.wave_lengths.tolist() == [120, 90, 70]
    assert torch.equal(batch.spec[2, :, :7], a.spec) and not batch.spec[2, :, 7:].any()
    assert batch.pitch is not None and c.pitch is not None
    assert torch.equal(batch.pitch[1, :9], c.pitch) and batch.pitch.dtype == torch.long
    nof0 = collate([_sample(3, f0=False), _sample(4, f0=False)])
    assert nof0.pitch is None and nof0.pitchf is None


def test_split_holdout_keeps_mute_for_training(tmp_path: Path) -> None:
    def e(name: str, mute: bool = False) -> FilelistEntry:
        d = tmp_path / ("mute" if mute else "exp") / "0_gt_wavs"
        return FilelistEntry(d / name, d / "f.npy", None, None, 0)

    entries = [e(f"{i}.wav") for i in range(30)] + [e("mute.wav", True)] * 2
    train_e, held = split_holdout(entries, None, seed=3)
    assert len(held) == 3 and len(train_e) == 29
    assert all(not h.is_mute for h in held) and sum(t.is_mute for t in train_e) == 2
    assert split_holdout(entries, None, seed=3)[1] == held
    assert split_holdout(entries[:4], None)[1] == []  # too few segments to spare any


def test_load_sample_aligns_streams(tmp_path: Path) -> None:
    cfg = tiny_train_config()
    hop = cfg.data.hop_length
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    rng = np.random.default_rng(0)
    sf.write(exp.gt_wavs_dir / "0_0.wav", (rng.standard_normal(40000) * 3000).astype(np.int16), 40000)
    np.save(exp.feature_file("0_0.wav"), rng.standard_normal((49, 768)).astype(np.float32))  # 98 frames at 100/s
    np.save(exp.f0_file("0_0.wav"), np.full(101, 50, np.int64))
    np.save(exp.f0nsf_file("0_0.wav"), np.full(101, 220.0, np.float32))
    entry = FilelistEntry(
        exp.gt_wavs_dir / "0_0.wav", exp.feature_file("0_0.wav"), exp.f0_file("0_0.wav"), exp.f0nsf_file("0_0.wav"), 0
    )
    s = load_sample(entry, cfg)
    assert s.spec.shape == (cfg.data.spec_channels, 98)
    assert s.wave.shape == (1, 98 * hop) and s.phone.shape == (98, 768)
    assert s.pitch is not None and s.pitchf is not None
    assert s.pitch.shape == (98,) and s.pitch.dtype == torch.long and s.pitchf.dtype == torch.float32
    wav, _ = sf.read(exp.gt_wavs_dir / "0_0.wav", dtype="float32")
    assert torch.allclose(s.wave[0], torch.from_numpy(wav[: 98 * hop]))
    sf.write(exp.gt_wavs_dir / "0_0.wav", np.zeros(32000, np.int16), 32000)
    with pytest.raises(UserInputError, match="32000 Hz"):
        load_sample(entry, cfg)


def test_settings_validation(tmp_path: Path) -> None:
    base: dict[str, Any] = dict(
        exp_root=str(tmp_path), version="v2", sample_rate="40k", use_f0=True, name="x", epochs=1
    )
    with pytest.raises(UserInputError, match="from scratch"):
        TrainSettings(**base)
    with pytest.raises(UserInputError, match="batch_size"):
        TrainSettings(**base, from_scratch=True, batch_size=0)
    with pytest.raises(UserInputError, match="only fit training from scratch"):
        TrainSettings(**base, pretrained_g="g", pretrained_d="d", discriminator_periods=(2,))
    assert TrainSettings(**base, from_scratch=True, batch_size="auto").batch_size == "auto"


def test_auto_batch_size_on_cpu() -> None:
    from infer.lib.device import training_precision

    cpu = torch.device("cpu")
    cfg = tiny_train_config()
    assert auto_batch_size(cfg, cpu, training_precision(cpu), 100, 1) == 4
    assert auto_batch_size(cfg, cpu, training_precision(cpu), 3, 1) == 3


@pytest.mark.slow
def test_warm_start_from_pretrained_files(tmp_path: Path) -> None:
    # The full-size v2/40k pair in the published layout (stand-in values) loads into the run's
    # networks; a file for another sample rate is refused with a clear message before training.
    import json as _json

    from infer.lib.config import load_config
    from infer.modules.train.loop import _Trainer
    from tools.standin_writers import write_standin_pretrained

    cfg = load_config("v2", "40k")
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    exp.config_path.write_text(_json.dumps(cfg.to_dict()))
    g = write_standin_pretrained(tmp_path / "f0G40k.pth", "v2", "40k", True, "G")
    d = write_standin_pretrained(tmp_path / "f0D40k.pth", "v2", "40k", True, "D")
    base: dict[str, Any] = dict(
        exp_root=str(exp.root), version="v2", sample_rate="40k", use_f0=True, name="x", epochs=1, device="cpu"
    )
    tr = _Trainer(TrainSettings(**base, pretrained_g=str(g), pretrained_d=str(d)), 0, 1, 0, None)
    tr.setup_models()
    assert tr.standin is True and tr.start_epoch == 1 and tr.step == 0
    raw = torch.load(g, map_location="cpu", weights_only=True)["model"]
    assert torch.equal(tr.net_g.state_dict()["emb_g.weight"], raw["emb_g.weight"].float())
    g48 = write_standin_pretrained(tmp_path / "f0G48k.pth", "v2", "48k", True, "G")
    tr = _Trainer(TrainSettings(**base, pretrained_g=str(g48), pretrained_d=str(d)), 0, 1, 0, None)
    with pytest.raises(UserInputError, match="48k"):
        tr.setup_models()


@pytest.mark.parametrize("world", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_features_of_the_wrong_width_are_refused_before_training(tmp_path: Path, world: int) -> None:
    """Features from a tiny HuBERT (32-dim) must not reach a v2 (768-dim) network. With 2 spawned DDP
    processes the workers' `UserInputError` reaches the caller as it is (type and whole message)."""
    import json

    from infer.modules.train.train import train

    cfg = tiny_train_config()
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    exp.config_path.write_text(json.dumps(cfg.to_dict()))
    rng = np.random.default_rng(0)
    lines = []
    for i in range(3):
        name = f"0_{i}.wav"
        sf.write(exp.gt_wavs_dir / name, (rng.standard_normal(40000) * 3000).astype(np.int16), 40000)
        np.save(exp.feature_file(name), rng.standard_normal((49, 32)).astype(np.float32))
        np.save(exp.f0_file(name), np.full(101, 50, np.int64))
        np.save(exp.f0nsf_file(name), np.full(101, 220.0, np.float32))
        lines.append(f"{exp.gt_wavs_dir / name}|{exp.feature_file(name)}|{exp.f0_file(name)}|{exp.f0nsf_file(name)}|0")
    exp.filelist_path.write_text("\n".join(lines) + "\n")
    settings = TrainSettings(
        exp_root=str(exp.root), version="v2", sample_rate="40k", use_f0=True, name="x", epochs=1,
        from_scratch=True, batch_size=2, device="cpu", world_size=world, num_workers=0,
    )  # fmt: skip
    with pytest.raises(UserInputError, match="32-dim content features but a v2 model takes 768-dim"):
        train(settings)
    assert not list(exp.root.glob("G_*.pth"))


def test_generator_losses_with_a_frozen_judge_equal_the_reference_formulation(tmp_path: Path) -> None:
    """`adversarial_losses` (frozen discriminator, real audio without autograd) gives the losses and the
    generated audio's gradient of `net_d(wave, y_hat)` with a trainable discriminator, leaves no gradient
    on the discriminator, and restores its trainable flags."""
    import json

    from infer.lib.losses import feature_loss, generator_loss
    from infer.modules.train.loop import _Trainer

    cfg = tiny_train_config()
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    exp.config_path.write_text(json.dumps(cfg.to_dict()))
    settings = TrainSettings(
        exp_root=str(exp.root), version="v2", sample_rate="40k", use_f0=True, name="x", epochs=1,
        from_scratch=True, batch_size=2, device="cpu", world_size=1, num_workers=0,
    )  # fmt: skip
    tr = _Trainer(settings, 0, 1, 0, None)
    tr.setup_models()
    gen = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(2, 1, cfg.train.segment_size, generator=gen)
    base = 0.1 * torch.randn(2, 1, cfg.train.segment_size, generator=gen)

    y_hat = base.clone().requires_grad_(True)
    _, y_d_g, fmap_r, fmap_g = tr.net_d(wave, y_hat)  # the reference's way: everything with autograd
    ref_gen, _ = generator_loss(y_d_g)
    ref_fm = feature_loss(fmap_r, fmap_g)
    (ref_gen + ref_fm).backward()
    assert y_hat.grad is not None
    ref_grad = y_hat.grad.clone()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.net_d.parameters())

    tr.net_d.zero_grad(set_to_none=True)
    y_hat = base.clone().requires_grad_(True)
    loss_gen, loss_fm = tr.adversarial_losses(wave, y_hat)
    (loss_gen + loss_fm).backward()
    assert loss_gen.item() == pytest.approx(ref_gen.item(), rel=1e-5)
    assert loss_fm.item() == pytest.approx(ref_fm.item(), rel=1e-5)
    torch.testing.assert_close(y_hat.grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert ref_grad.abs().max() > 0
    assert all(p.grad is None and p.requires_grad for p in tr.net_d.parameters())
