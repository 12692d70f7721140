"""HuBERT without fairseq: safe checkpoint loading, fairseq's numbers, full-size layout, stand-in files."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import pickletools
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from infer.lib.errors import WeightsError
from infer.lib.fairseq_ckpt import InertObject, load_fairseq_checkpoint
from infer.lib.hubert import (
    DICTIONARY_CLASS,
    HubertConfig,
    HubertModel,
    load_hubert,
    parse_conv_layers,
)
from infer.lib.standin import STANDIN_KEY
from tools.standin_writers import write_standin_hubert


@pytest.fixture(scope="module")
def hubert_dir(reference_dir: Path) -> Path:
    return reference_dir / "hubert"


@pytest.fixture(scope="module")
def tiny_model(hubert_dir: Path) -> HubertModel:
    return load_hubert(hubert_dir / "tiny_hubert_fairseq.pt", "cpu")


@pytest.fixture(scope="module")
def input_16k(hubert_dir: Path) -> torch.Tensor:
    return torch.from_numpy(np.load(hubert_dir / "input_16k.npy")).float()[None]


def _globals_in_pickle(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    out = io.StringIO()
    pickletools.dis(data, out=out)
    return {line.split("GLOBAL", 1)[1].strip().strip("'") for line in out.getvalue().splitlines() if " GLOBAL " in line}


# --- the restricted unpickler -------------------------------------------------------------------


def test_reference_checkpoint_loads_without_fairseq(hubert_dir: Path) -> None:
    ckpt = load_fairseq_checkpoint(hubert_dir / "tiny_hubert_fairseq.pt")
    assert set(ckpt) >= {"cfg", "model", "task_state", "args", "optimizer_history", "extra_state"}
    assert ckpt["cfg"]["model"]["encoder_embed_dim"] == 32
    (dictionary,) = ckpt["task_state"]["dictionaries"]
    assert isinstance(dictionary, InertObject) and dictionary.pickled_class == DICTIONARY_CLASS
    assert dictionary.state["symbols"][:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert ckpt["model"]["final_proj.weight"].dtype == torch.float16
    assert not any(m == "fairseq" or m.startswith("fairseq.") for m in sys.modules)


class _Exploit:
    """Pickles as a call to os.system (what a hostile checkpoint would contain)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_hostile_pickle_stays_inert(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(
        {"cfg": {"model": {}}, "model": {"w": torch.ones(2)}, "payload": _Exploit(marker)},
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    ckpt = load_fairseq_checkpoint(path)
    assert not marker.exists(), "pickled code ran"
    payload = ckpt["payload"]
    assert isinstance(payload, InertObject)
    assert payload.pickled_class in ("posix.system", "os.system", "nt.system")
    assert payload.args == (f"touch {marker}",)
    assert torch.equal(ckpt["model"]["w"], torch.ones(2))
    # and the network loader refuses the file instead of building something from it
    with pytest.raises(WeightsError):
        load_hubert(path)
    assert not marker.exists()


def test_hostile_pickle_plain_reference_would_run(tmp_path: Path) -> None:
    """Control: the same bytes do run code under a plain unpickler (so the test above means something)."""
    marker = tmp_path / "ran"
    data = pickle.dumps(_Exploit(marker), protocol=2)
    pickle.loads(data)
    assert marker.exists()


def test_garbage_file_is_a_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / "hubert_base.pt"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(WeightsError):
        load_hubert(bad)
    with pytest.raises(WeightsError, match="not found"):
        load_hubert(tmp_path / "missing.pt")


def test_conv_layer_spec_is_parsed_not_evaluated() -> None:
    assert parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")[-1] == (512, 2, 2)
    assert len(parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")) == 7
    with pytest.raises(WeightsError):
        parse_conv_layers("__import__('os').system('true')")


# --- the network ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"), [("v1", "expected_v1_layer9_final_proj.npy"), ("v2", "expected_v2_layer12.npy")]
)
def test_tiny_matches_fairseq(
    tiny_model: HubertModel, input_16k: torch.Tensor, hubert_dir: Path, version: str, expected: str
) -> None:
    ref = np.load(hubert_dir / expected)
    with torch.inference_mode():
        out = tiny_model.extract(input_16k, None, version)
        out_masked = tiny_model.extract(input_16k, torch.zeros_like(input_16k, dtype=torch.bool), version)
    assert out.dtype == torch.float32 and out.shape == (1, *ref.shape)
    np.testing.assert_allclose(out[0].numpy(), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(out_masked[0].numpy(), ref, atol=1e-4, rtol=0)
    assert tiny_model.num_frames(input_16k.shape[1]) == ref.shape[0]


def test_batch_rows_equal_single_rows(tiny_model: HubertModel, input_16k: torch.Tensor) -> None:
    a = input_16k[:, :16000]
    b = input_16k[:, 16000:]
    with torch.inference_mode():
        both = tiny_model.extract(torch.cat([a, b]), None, "v2")
        one = tiny_model.extract(a, None, "v2")
        two = tiny_model.extract(b, None, "v2")
    torch.testing.assert_close(both[0], one[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[1], two[0], atol=1e-5, rtol=1e-5)


def test_full_size_layout_matches_reference(hubert_dir: Path) -> None:
    """The published key/shape list (built by fairseq with final_dim=0 and a 4-symbol dictionary)."""
    ref = json.loads((hubert_dir / "hubert_base_state_dict_shapes.json").read_text())
    with torch.device("meta"):
        model = HubertModel(HubertConfig(final_dim=768, num_classes=4))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(got) == list(ref)  # same keys, same order
    assert got == ref
    assert sum(int(np.prod(s)) for s in got.values()) == 94_965_376
    # hubert_base.pt itself has final_dim 256 and 504 classes: only those two rows differ
    with torch.device("meta"):
        base = HubertModel(HubertConfig())
    diff = {k for k, v in base.state_dict().items() if list(v.shape) != ref[k]}
    assert diff == {"label_embs_concat", "final_proj.weight", "final_proj.bias"}
    assert base.output_dim("v1") == 256 and base.output_dim("v2") == 768


def test_mismatched_state_dict_is_refused(tmp_path: Path, hubert_dir: Path) -> None:
    ckpt = load_fairseq_checkpoint(hubert_dir / "tiny_hubert_fairseq.pt")
    del ckpt["model"]["encoder.layers.3.fc1.weight"]
    ckpt["model"]["final_proj.bias"] = torch.zeros(17, dtype=torch.float16)
    from infer.lib.fairseq_ckpt import save_fairseq_checkpoint

    save_fairseq_checkpoint(ckpt, tmp_path / "broken.pt")
    with pytest.raises(WeightsError, match=r"missing: encoder.layers.3.fc1.weight.*wrong shape: final_proj.bias"):
        load_hubert(tmp_path / "broken.pt")


def test_reference_file_roundtrips_through_our_writer(tmp_path: Path, hubert_dir: Path) -> None:
    """Re-saving the fairseq file with our writer keeps the pickled class paths and the numbers."""
    from infer.lib.fairseq_ckpt import save_fairseq_checkpoint

    ckpt = load_fairseq_checkpoint(hubert_dir / "tiny_hubert_fairseq.pt")
    save_fairseq_checkpoint(ckpt, tmp_path / "copy.pt")
    assert _globals_in_pickle(tmp_path / "copy.pt") == _globals_in_pickle(hubert_dir / "tiny_hubert_fairseq.pt")
    again = load_fairseq_checkpoint(tmp_path / "copy.pt")
    assert again["task_state"]["dictionaries"][0].state == ckpt["task_state"]["dictionaries"][0].state
    assert all(torch.equal(again["model"][k], v) for k, v in ckpt["model"].items())


# --- stand-in files ------------------------------------------------------------------------------


def test_tiny_standin_is_in_the_fairseq_format(tmp_path: Path, hubert_dir: Path, caplog) -> None:  # noqa: ANN001
    path = write_standin_hubert(tmp_path / "hubert_base.pt", size="tiny")
    reference = hubert_dir / "tiny_hubert_fairseq.pt"
    assert _globals_in_pickle(path) == _globals_in_pickle(reference)
    ours, theirs = load_fairseq_checkpoint(path), load_fairseq_checkpoint(reference)
    assert isinstance(ours.pop(STANDIN_KEY), str)
    assert set(ours) == set(theirs)
    assert set(ours["cfg"]["model"]) <= set(theirs["cfg"]["model"])
    assert {k: v.shape for k, v in ours["model"].items()} == {
        k: v.shape for k, v in theirs["model"].items() if k != "label_embs_concat"
    } | {"label_embs_concat": torch.Size([504, 16])}
    assert all(v.dtype == torch.float16 for v in ours["model"].values())
    assert ours["task_state"]["dictionaries"][0].pickled_class == DICTIONARY_CLASS
    # deterministic: writing again gives the same bytes
    again = write_standin_hubert(tmp_path / "again" / "hubert_base.pt", size="tiny")
    assert again.read_bytes() == path.read_bytes()
    # loads through the same loader, loudly marked
    with caplog.at_level(logging.WARNING, logger="rvc"):
        model = load_hubert(path)
    assert model.standin and "stand-in" in caplog.text
    with torch.inference_mode():
        out = model.extract(torch.randn(2, 8000), None, "v1")
    assert out.shape == (2, 24, 16) and torch.isfinite(out).all()


def test_real_reference_file_is_not_flagged(tiny_model: HubertModel) -> None:
    assert tiny_model.standin is None


@pytest.mark.slow
def test_base_standin_full_size(tmp_path: Path) -> None:
    path = write_standin_hubert(tmp_path / "hubert_base.pt", size="base")
    assert 180e6 < path.stat().st_size < 200e6  # the published file is 189,507,909 bytes
    model = load_hubert(path)
    assert (
        sum(p.numel() for p in model.parameters()) == 94_697_600
    )  # 94,965,376 - the two rows above + 504x256 labels + 256x768 proj
    with torch.inference_mode():
        v1 = model.extract(torch.randn(1, 16000), None, "v1")
        v2 = model.extract(torch.randn(1, 16000), None, "v2")
    assert v1.shape == (1, 49, 256) and v2.shape == (1, 49, 768)
    assert torch.isfinite(v1).all() and torch.isfinite(v2).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_on_cuda_close_to_fp32(tiny_model: HubertModel, input_16k: torch.Tensor, hubert_dir: Path) -> None:
    model = load_hubert(hubert_dir / "tiny_hubert_fairseq.pt", "cuda", half=True)
    assert model.dtype == torch.float16
    with torch.inference_mode():
        out = model.extract(input_16k.cuda(), None, "v2").float().cpu()
    ref = np.load(hubert_dir / "expected_v2_layer12.npy")
    np.testing.assert_allclose(out[0].numpy(), ref, atol=5e-2)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_extract_many_equals_each_alone(tiny_model: HubertModel, input_16k: torch.Tensor, version: str) -> None:
    """Mixed lengths in one padded pass give each waveform's own numbers (masked GroupNorm and attention)."""
    x = input_16k[0]
    wavs = [x, x[3000:20000], x[:12345], x[100 : 100 + 400 + 320 * 4]]
    with torch.inference_mode():
        many = tiny_model.extract_many(wavs, version)
        alone = [tiny_model.extract(w[None], None, version)[0] for w in wavs]
        # fairseq's own padding mask leaves the GroupNorm statistics to the padding: not equal
        padded = torch.zeros(2, x.shape[0])
        padded[0], padded[1, :12345] = x, x[:12345]
        mask = torch.arange(x.shape[0])[None, :] >= torch.tensor([x.shape[0], 12345])[:, None]
        fairseq_style = tiny_model.extract(padded, mask, version)[1, : alone[2].shape[0]]
    for m, a in zip(many, alone):
        assert m.shape == a.shape
        torch.testing.assert_close(m, a, atol=2e-5, rtol=1e-5)
    assert [m.shape[0] for m in many] == [99, 52, 38, 5]
    assert (fairseq_style - alone[2]).abs().max() > 1e-3
