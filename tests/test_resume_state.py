"""A `resume_from` zip is untrusted: crafted names, states and sizes are refused before any work."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.lib.resume_state import SizeCaps, checkpoint_caps, read_resume_state, unpack_resume
from infer.modules.train.package import unpack_checkpoints
from infer.modules.train.pipeline import TrainModules, TrainOptions


def good_state(**over: Any) -> dict[str, Any]:
    sched = {"gamma": 0.999875, "base_lrs": [1e-3], "last_epoch": 2, "_step_count": 3, "_last_lr": [9.9e-4]}
    st = {
        "epoch": 2,
        "step": 12,
        "checkpoint_g": "G_12.pth",
        "checkpoint_d": "D_12.pth",
        "version": "v2",
        "sample_rate": "40k",
        "use_f0": True,
        "name": "joe",
        "scheduler_g": dict(sched),
        "scheduler_d": dict(sched),
        "scaler": None,
        "history": [{"epoch": 1, "step": 6, "loss_d": 2.5, "holdout_mel": None}, {"epoch": 2, "step": 12}],
        "best_epoch": 2,
        "best_holdout_mel": 3.1,
        "best_model_path": "joe_best_e2.pth",
        "skipped_steps": 0,
        "initial_holdout_mel": 3.2,
        "standin_weights": True,
        "from_scratch": False,
    }
    st.update(over)
    return st


def make_zip(
    path: Path, state: Any = None, extra: dict[str, bytes] | None = None, raw_state: bytes | None = None
) -> Path:
    members = {
        "joe.pth": b"model",
        "joe_best_e2.pth": b"best",
        "checkpoints/G_12.pth": b"G" * 100,
        "checkpoints/D_12.pth": b"D" * 100,
        "train.log": b"log",
    }
    members.update(extra or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, b in members.items():
            z.writestr(n, b)
        data = raw_state if raw_state is not None else json.dumps(good_state() if state is None else state).encode()
        z.writestr("checkpoints/train_state.json", data)
    return path


def test_good_zip_unpacks_only_the_checkpoint_pair_and_best_model(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip")
    out = tmp_path / "exp"
    out.mkdir()
    st = unpack_resume(z, out)
    assert sorted(p.name for p in out.iterdir()) == ["D_12.pth", "G_12.pth", "joe_best_e2.pth"]
    assert (st["checkpoint_g"], st["best_model_path"], st["epoch"]) == ("G_12.pth", "joe_best_e2.pth", 2)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("checkpoint_g", "../../G_12.pth"),
        ("checkpoint_d", "/tmp/D_12.pth"),
        ("checkpoint_g", "sub/G_12.pth"),
        ("best_model_path", "/proc/self/environ"),
        ("best_model_path", "../joe_best_e2.pth"),
        ("best_model_path", "train.log"),
    ],
)
def test_state_names_with_paths_are_refused_and_nothing_is_written(tmp_path: Path, key: str, value: str) -> None:
    # the named file exists in the zip under that very name, as a crafted zip would have it
    extra = {f"checkpoints/{value}" if key != "best_model_path" else value: b"x"} if ".." not in value else {}
    if value.startswith("/"):
        extra = {}
    z = make_zip(tmp_path / "m.zip", good_state(**{key: value}), extra)
    exp = ExperimentLayout(tmp_path / "job" / "exp")
    exp.root.mkdir(parents=True)
    with pytest.raises(UserInputError, match="resume_from: m.zip"):
        unpack_checkpoints(z, exp)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [z]


@pytest.mark.parametrize("name", ["../evil.pth", "/abs/evil.pth", "checkpoints/../../evil.pth", "checkpoints/x.sh"])
def test_unsafe_or_unexpected_member_names_refuse_the_zip(tmp_path: Path, name: str) -> None:
    z = make_zip(tmp_path / "m.zip", extra={name: b"x"})
    with pytest.raises(UserInputError, match="unsafe name|unexpected file"):
        read_resume_state(z)


def test_proc_environ_as_best_model_never_reaches_the_folder(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", good_state(best_model_path="/proc/self/environ"))
    with pytest.raises(UserInputError, match="best_model_path is not a plain model file name"):
        read_resume_state(z)


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({k: v for k, v in good_state().items() if k != "checkpoint_g"}, "without checkpoint_g"),
        ({k: v for k, v in good_state().items() if k != "epoch"}, "without epoch"),
        (good_state(epoch="2"), "epoch is not a whole number"),
        (good_state(use_f0="yes"), "use_f0 is not true/false"),
        (good_state(version="v9"), "unknown version"),
        (good_state(version=["v2"]), "unknown version"),
        (good_state(sample_rate={"40k": 1}), "unknown version or sample_rate"),
        (good_state(scheduler_g={"base_lrs": "x", "last_epoch": 1}), "scheduler_g.base_lrs"),
        (good_state(scheduler_d=None), "scheduler_d is not an object"),
        (good_state(history=[{"step": 1}]), "without an epoch number"),
        (good_state(history=[{"epoch": 1, "x": "text"}]), "not a number"),
        (good_state(best_epoch=2, best_holdout_mel=None), "best_epoch/best_holdout_mel"),
        (good_state(checkpoint_g="G_99.pth"), "lacks checkpoints/G_99.pth"),
        ([1, 2, 3], "not a JSON object"),
        ("text", "not a JSON object"),
    ],
)
def test_malformed_state_is_a_user_input_error(tmp_path: Path, state: Any, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        read_resume_state(make_zip(tmp_path / "m.zip", state))


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b"{not json", b"[" * 100_000])
def test_state_that_is_not_json_is_a_user_input_error(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(UserInputError, match="not valid JSON|not a JSON object"):
        read_resume_state(make_zip(tmp_path / "m.zip", raw_state=raw))


def test_inflating_state_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", raw_state=b" " * (64 << 20))  # 64 MiB of spaces, ~64 KiB compressed
    assert z.stat().st_size < 1 << 20
    with pytest.raises(UserInputError, match="larger than 1024 KiB"):
        read_resume_state(z)


def test_checkpoint_larger_than_the_network_allows_is_refused(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip")
    with pytest.raises(UserInputError, match="G_12.pth of 0 MiB, more than"):
        read_resume_state(z, SizeCaps(checkpoint_g=50))


def test_not_a_zip_is_a_user_input_error(tmp_path: Path) -> None:
    p = tmp_path / "m.zip"
    p.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserInputError, match="not a readable zip"):
        read_resume_state(p)


def test_checkpoint_caps_follow_the_network_size(tiny_config) -> None:
    from infer.lib.config import load_config

    big = checkpoint_caps(load_config("v2", "40k"), True)
    tiny = checkpoint_caps(tiny_config("v2", "40k"), True)
    # v2/40k: G 36.5 M parameters -> G_*.pth ~ 440 MB; D 71.4 M -> ~860 MB
    assert 440 << 20 < big.checkpoint_g < 480 << 20 and 850 << 20 < big.checkpoint_d < 920 << 20
    assert tiny.checkpoint_g < big.checkpoint_g


def test_bad_resume_zip_fails_the_run_before_any_stage(tmp_path: Path, tiny_config) -> None:
    z = make_zip(tmp_path / "m.zip", good_state(best_model_path="/proc/self/environ"))
    opts = TrainOptions(experiment_name="joe", sample_rate="40k", epochs=3, resume_from=str(z), enhance_audio=False)
    tm = TrainModules(opts, tmp_path / "exp", weight_paths={}, config=tiny_config("v2", "40k"))
    with pytest.raises(UserInputError, match="best_model_path"):
        tm.run([tmp_path / "missing.wav"], tmp_path / "out.zip")
    assert tm.results == [] and not (tmp_path / "exp").exists()


def test_tools_train_refuses_a_bad_resume_zip_before_downloading(tmp_path: Path, capsys) -> None:
    from tests.support.http_server import LocalHTTPServer
    from tools.train import main

    z = make_zip(tmp_path / "m.zip", good_state(checkpoint_g="../../G_12.pth"))
    with LocalHTTPServer() as srv:
        url = srv.add("/a.wav", b"RIFF")
        rc = main(
            [
                url,
                "--out",
                str(tmp_path / "x.zip"),
                "--workdir",
                str(tmp_path / "w" / "exp"),
                "--epochs",
                "3",
                "--resume-from",
                str(z),
                "--no-enhance",
            ]
        )
    assert rc == 1 and "checkpoint_g is not a plain checkpoint file name" in capsys.readouterr().err
    assert srv.hits["/a.wav"] == 0


def test_a_zip_with_too_many_members_is_refused(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "m.zip", extra={f"tensorboard/e{i}": b"" for i in range(10_001)})
    with pytest.raises(UserInputError, match="more than a model zip ever does"):
        read_resume_state(z)
