"""The whole pipeline on ../shared/data/joe_1min with a tiny network: the zip, its model, resuming."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench.gpu_fixtures import tiny_settings
from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.modules.train.data import BucketBatchSampler, split_holdout
from infer.modules.train.progress import job_stages
from infer.modules.train.state import state_path
from infer.modules.train.train import TrainSettings, train
from tests.support.training import TinyModules, TrainedRun, copy_experiment, tiny_options, tiny_train_config

# The session's one trained run (`trained_run`, tests/support/training.py): joe's four files mixed with
# another voice, white noise and music, 2 epochs of the tiny network, checkpoints in the zip.


def test_stages_ran_in_order_with_timings(trained_run: TrainedRun) -> None:
    names = [s.name for s in trained_run.result.stages]
    assert names == [s for s in job_stages(use_f0=True) if s != "collect audio"]  # that one is the job runner's
    assert all(s.seconds >= 0 for s in trained_run.result.stages)
    exp = trained_run.exp
    assert json.loads((exp.reports_dir / "train.json").read_text())["epochs"] == 2


def test_zip_contents(trained_run: TrainedRun) -> None:
    with zipfile.ZipFile(trained_run.zip) as z:
        names = set(z.namelist())
        card = json.loads(z.read("model_card.json"))
        index_names = [n for n in names if n.endswith(".index")]
        assert (
            len(index_names) == 1
            and index_names[0].startswith("added_IVF")
            and index_names[0].endswith("_joe_v2.index")
        )
        best = f"joe_best_e{card['training']['best_epoch']}.pth"
        want = {"joe.pth", best, "config.json", "model_card.json", "loss.png", "train.log", "preview.wav"}
        assert want <= names
        assert any(n.startswith("tensorboard/events.out.tfevents") for n in names)
        assert "checkpoints/train_state.json" in names
        steps = card["training"]["steps"]
        assert {n for n in names if n.startswith("checkpoints/")} == {
            f"checkpoints/G_{steps}.pth",
            f"checkpoints/D_{steps}.pth",
            "checkpoints/train_state.json",
        }
        assert not any(n.endswith(".npy") or n.startswith(("0_gt", "1_16k", "2a_", "2b-", "3_feature")) for n in names)
        assert z.read("loss.png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert json.loads(z.read("config.json")) == tiny_train_config().to_dict()
    assert set(card["files"]) == names
    t = card["training"]
    assert (t["epochs"], t["n_holdout_segments"], t["world_size"], t["precision"]) == (2, 2, 1, "fp32")
    assert t["steps"] == t["history"][-1]["step"] > 0
    assert card["inputs"]["files"] == [
        *("joe_000.wav", "joe_001.wav", "joe_002.wav", "joe_003.wav"),
        *("anna.wav", "noise.wav", "music.wav"),
    ]
    assert card["dataset"]["kept_s"] > 50
    assert set(card["durations_s"]) >= {
        "check audio",
        "check speech",
        "preprocess",
        "features",
        "pitch",
        "train",
        "index",
    }
    assert card["standin_weights"] is True and "hubert/hubert_base.pt" in card["standin_weight_names"]
    assert card["versions"]["torch"] == torch.__version__
    assert card["model"]["version"] == "v2" and card["model"]["sample_rate"] == "40k"


def test_zip_holds_no_host_paths_or_secrets(trained_run: TrainedRun) -> None:
    root = str(trained_run.root)
    with zipfile.ZipFile(trained_run.zip) as z:
        card, log = z.read("model_card.json").decode(), z.read("train.log").decode()
    assert root not in card and root not in log
    assert "exp/G_" in log or "checkpoint: G_" in log  # paths are still there, relative to the job
    assert "HF_TOKEN" not in log and "PATH=" not in log


def test_the_voice_alone_is_trained_and_the_others_named(trained_run: TrainedRun) -> None:
    """Joe's files mixed with another voice, noise and music train on joe alone;
    the card and the log name the three others and why; the card has the preview's speaker similarity."""
    exp = trained_run.exp
    with zipfile.ZipFile(trained_run.zip) as z:
        card = json.loads(z.read("model_card.json"))
        log = z.read("train.log").decode()
    ds = card["dataset"]
    assert ds["n_files"] == 4 and ds["n_files_given"] == 7  # preprocessed only joe's four files
    assert {(f["name"], f["reason"]) for f in ds["excluded_files"]} == {
        ("anna.wav", "another speaker"),
        ("noise.wav", "no speech"),
        ("music.wav", "no speech"),
    }
    files = {f["name"]: f for f in ds["files"]}
    for name in ("joe_000.wav", "joe_001.wav", "joe_002.wav", "joe_003.wav"):
        f = files[name]
        assert f["excluded"] is None and f["other_speaker"] is False and f["speaker_similarity"] > 0.9
        assert f["speech_s"] > 10 and f["segments_kept"] > 0 and f["speech_kept_s"] > 10
    assert files["anna.wav"]["other_speaker"] is True and files["anna.wav"]["speaker_similarity"] < 0.7
    assert files["noise.wav"]["speech_s"] < 1 and files["music.wav"]["speech_s"] < 1
    assert 45 < ds["speech_s"] <= ds["kept_s"]  # the dataset's minutes are speech minutes
    assert {p.name.split("_")[0] for p in exp.gt_wavs_dir.glob("*.wav")} == {"0", "1", "2", "3"}
    for name in ("anna.wav", "noise.wav", "music.wav"):
        assert re.search(rf"{name}.*LEFT OUT", log), name
    q = card["quality"]
    # stand-in HuBERT, a 2-epoch tiny network from scratch: the preview is no voice, and says why
    assert 0 <= q["heldout_speaker_similarity"] <= 1 and q["heldout_speaker_similarity"] > 0.9
    assert -1 <= q["preview_speaker_similarity"] < 0.8 and q["preview_reading"].startswith(
        f"{q['preview_speaker_similarity']:.2f}: "
    )
    assert "stand-in" in q["note"]
    assert -1 <= q["best_preview_speaker_similarity"] < 0.8  # joe_best_e<N>.pth converts the same excerpt
    assert "preview speaker similarity" in log


def test_training_was_finite_and_mel_loss_went_down(trained_run: TrainedRun) -> None:
    tr = trained_run.report
    h = tr["history"]
    assert len(h) == 2 and tr["skipped_steps"] == 0
    for rec in h:
        for k in ("loss_d", "loss_gen", "loss_fm", "loss_mel", "loss_kl", "mel_l1"):
            assert np.isfinite(rec[k]), (k, rec)
    # The held-out mel loss (the same segments, noise and slices each time, through the conversion path)
    # falls at every epoch. Epoch means of the training mel loss are not compared: at 6 steps an epoch
    # they average different random slices, and moved by +0.1% (2.9687 -> 2.9719) on data that also gave
    # 3.199 -> 3.176 -> 3.172 held out.
    holdout = [tr["initial_holdout_mel"]] + [rec["holdout_mel"] for rec in h]
    assert all(b < a for a, b in zip(holdout, holdout[1:])), holdout
    assert tr["final_holdout_mel"] == holdout[-1]
    assert h[-1]["lr"] == pytest.approx(1e-3 * 0.999875**2)


def test_small_model_loads_and_converts(trained_run: TrainedRun, tmp_path: Path) -> None:
    from infer.lib.checkpoint import build_generator_from_small_model, load_small_model

    with zipfile.ZipFile(trained_run.zip) as z:
        z.extract("joe.pth", tmp_path)
    sm = load_small_model(tmp_path / "joe.pth")
    assert (sm.version, sm.sample_rate, sm.use_f0, sm.name, sm.epoch) == ("v2", "40k", True, "joe", 2)
    g = build_generator_from_small_model(sm, "cpu")
    exp = trained_run.exp
    feat = np.load(sorted(exp.feature_dir.glob("*.npy"))[0])
    phone = torch.from_numpy(np.repeat(feat, 2, axis=0))[None, :100]
    pitch = torch.full((1, 100), 60, dtype=torch.long)
    pitchf = torch.full((1, 100), 200.0)
    audio, _, _ = g.infer(phone, torch.tensor([100]), pitch, pitchf, torch.tensor([0]))
    assert audio.shape == (1, 1, 100 * 400) and torch.isfinite(audio).all()


def test_index_in_zip(trained_run: TrainedRun, tmp_path: Path) -> None:
    from infer.lib.index import read_index

    exp = trained_run.exp
    frames = sum(np.load(p).shape[0] for p in exp.feature_dir.glob("*.npy"))
    with zipfile.ZipFile(trained_run.zip) as z:
        name = next(n for n in z.namelist() if n.endswith(".index"))
        z.extract(name, tmp_path)
    idx = read_index(tmp_path / name)
    assert idx.d == 768 and idx.ntotal == frames


def test_resume_from_zip(trained_run: TrainedRun, tiny_modules: TinyModules, tmp_path: Path) -> None:
    z = trained_run.zip
    first = trained_run.report
    # Refused before any work: not more epochs than the zip holds, or another variant.
    with pytest.raises(UserInputError, match="already holds 2 epoch"):
        tiny_modules(tmp_path / "a", resume_from=str(z), epochs=2).check_resume()
    with pytest.raises(UserInputError, match="without pitch"):
        tiny_modules(tmp_path / "b", resume_from=str(z), epochs=3, use_f0=False).check_resume()
    # Continue for one more epoch on a copy of the experiment as it was before training.
    exp = copy_experiment(trained_run.exp, tmp_path / "exp")
    assert not list(exp.root.glob("G_*.pth"))
    tm = tiny_modules(exp.root, resume_from=str(z), epochs=3)
    tm.check_resume()
    tm.fetch_weights()
    tm.filelist()
    rep = tm.train()
    per_epoch = first["steps"] // 2
    assert (rep.start_epoch, rep.epochs, rep.steps) == (3, 3, first["steps"] + per_epoch)
    assert rep.history[:2] == first["history"]
    assert rep.history[2]["lr"] == pytest.approx(1e-3 * 0.999875**3)
    assert rep.initial_holdout_mel == first["initial_holdout_mel"]
    assert Path(rep.checkpoint_g).name == f"G_{rep.steps}.pth"
    assert sorted(p.name for p in exp.root.glob("G_*.pth")) == [f"G_{rep.steps}.pth"]  # only the latest kept


def test_tools_train_until_preprocess_and_errors(
    tmp_path: Path, joe_1min: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.train import main

    work = tmp_path / "work"
    files = [str(p) for p in sorted(joe_1min.glob("*.wav"))[:3]]  # 38 s of speech: over the 30 s minimum
    rc = main(
        [*files, "--out", str(tmp_path / "x.zip"), "--workdir", str(work), "--until", "preprocess", "--no-enhance"]
    )
    assert rc == 0
    assert len(list((work / "0_gt_wavs").glob("*.wav"))) > 3 and not (tmp_path / "x.zip").exists()
    assert "stopped after preprocess" in capsys.readouterr().out
    rc = main([str(tmp_path / "missing"), "--out", str(tmp_path / "y.zip")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("error: ") and "missing" in err[-1]
    rc = main([*files, "--out", str(tmp_path / "y.zip"), "--batch-size", "zero"])
    assert rc == 1 and "batch_size" in capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------------ training


def _settings(exp: ExperimentLayout, **kw: Any) -> TrainSettings:
    """The trained run's settings (tiny network, one-period discriminator) on a copy of its experiment."""
    return tiny_settings(exp, **{"name": "joe", "batch_size": 8, "holdout": 2, "log_every": 2, "device": "cpu", **kw})


@pytest.mark.slow
def test_ddp_two_gloo_processes_streaming(trained_run: TrainedRun, tmp_path: Path) -> None:
    # Two gloo processes on the CPU, and the streaming data path (DataLoader workers) as for long datasets.
    exp = copy_experiment(trained_run.exp, tmp_path / "exp")
    rep = train(_settings(exp, world_size=2, batch_size=4, holdout=1, memory_limit_mb=0, num_workers=1))
    assert rep.in_memory is False
    assert rep.world_size == 2 and rep.epochs == 1 and rep.batch_size == 4
    # Each rank took len(sampler) steps over its share of the bucketed, padded training set.
    from infer.modules.train.data import wav_frames
    from infer.modules.train.filelist import read_filelist

    train_e, held = split_holdout(read_filelist(exp.filelist_path), 1, 1234)
    lengths = [wav_frames(str(e.gt_wav), 400) for e in train_e]
    assert rep.steps == len(BucketBatchSampler(lengths, 4, num_replicas=2, rank=0)) == rep.history[-1]["step"]
    losses = rep.final_losses
    assert losses and all(np.isfinite(v) for v in losses.values())
    st = json.loads(state_path(exp).read_text())
    assert st["step"] == rep.steps and (exp.root / st["checkpoint_g"]).is_file()
    from infer.lib.checkpoint import load_small_model

    assert load_small_model(rep.model_path).version == "v2"


def test_cancel_saves_a_checkpoint_then_raises(trained_run: TrainedRun, tmp_path: Path) -> None:
    import threading

    from infer.lib.errors import CancelledError

    exp = copy_experiment(trained_run.exp, tmp_path / "exp")
    ev = threading.Event()
    ev.set()  # as the Predictor's cancel or SIGTERM would: stop at the next step
    with pytest.raises(CancelledError, match="checkpoint saved"):
        train(_settings(exp, holdout=0), cancel=ev)
    st = json.loads(state_path(exp).read_text())
    assert (st["epoch"], st["step"]) == (0, 0)
    assert (exp.root / st["checkpoint_g"]).is_file() and (exp.root / st["checkpoint_d"]).is_file()


def test_weights_come_from_the_weights_folder_and_standins_are_named(tmp_path: Path) -> None:
    # A stand-in folder written by the real tool, used offline through WeightDownloader.
    from infer.lib.weight_downloader import WeightsSettings
    from infer.modules.train.pipeline import TrainModules
    from tools.make_standin_weights import main as make_standins

    wd = tmp_path / "weights"
    assert make_standins(["--out", str(wd), "--tiny-hubert", "--names", "hubert/hubert_base.pt"]) == 0
    tm = TrainModules(
        tiny_options(),
        tmp_path / "exp",
        config=tiny_train_config(),
        weights_settings=WeightsSettings(weights_dir=wd, offline=True),
    )
    assert tm.required_weights() == ["hubert/hubert_base.pt"]  # from scratch, pm, no enhancement
    paths = tm.fetch_weights()
    assert paths == {"hubert/hubert_base.pt": wd / "hubert" / "hubert_base.pt"}
    assert tm.standin == ["hubert/hubert_base.pt"]
    real = TrainModules(
        tiny_options(from_scratch=False, f0method="rmvpe", enhance_audio=True),
        tmp_path / "exp2",
        config=tiny_train_config(),
    )
    assert real.required_weights() == [
        "hubert/hubert_base.pt",
        "pretrained_v2/f0G40k.pth",
        "pretrained_v2/f0D40k.pth",
        "rmvpe/rmvpe.pt",
        "mossformer2/MossFormer2_SE_48K",
    ]
    assert real.required_weights("preprocess") == ["mossformer2/MossFormer2_SE_48K"]
