"""Model files: pretrained G/D in the published layout, training checkpoints, voice-model export/import."""

from __future__ import annotations

import argparse
import collections

import pytest
import torch

from infer.lib.checkpoint import (
    SUPPORTED_VOCODER,
    build_generator_from_small_model,
    export_small_model,
    load_checkpoint,
    load_pretrained,
    load_small_model,
    save_checkpoint,
)
from infer.lib.config import load_config
from infer.lib.errors import UserInputError
from infer.lib.model_variant import identify_discriminator, identify_generator
from infer.lib.models import build_discriminator, build_generator
from infer.lib.standin import STANDIN_KEY
from tools.standin_writers import deterministic_tensor, write_standin_pretrained

REFERENCE_KEYS = {"weight", "config", "info", "sr", "f0", "version"}
APPLIO_KEYS = {
    "epoch",
    "step",
    "creation_date",
    "model_hash",
    "dataset_length",
    "model_name",
    "author",
    "embedder_model",
    "speakers_id",
    "vocoder",
}


def _parametrizations_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        ): v
        for k, v in sd.items()
    }


def _meta_generator(version: str, sr: str, use_f0: bool):
    with torch.device("meta"):
        return build_generator(load_config(version, sr), use_f0)


# ------------------------------------------------------------------------------ full-size pretrained
@pytest.fixture(scope="module")
def standin_g48(tmp_path_factory):
    """A full-size stand-in `pretrained_v2/f0G48k.pth` (fp16, published layout, stand-in marker)."""
    path = tmp_path_factory.mktemp("pretrained_v2") / "f0G48k.pth"
    write_standin_pretrained(path, "v2", "48k", True, "G")
    return path


def test_standin_pretrained_g_has_published_layout_and_loads(standin_g48):
    obj = torch.load(standin_g48, weights_only=True)
    assert set(obj) == {"model", STANDIN_KEY}
    sd = obj["model"]
    assert all(v.dtype == torch.float16 for v in sd.values())
    assert identify_generator(sd).describe() == "v2 48k generator with pitch guidance (f0)"
    net = build_generator(load_config("v2", "48k"), True)
    desc = load_pretrained(standin_g48, net, "G", "v2 48k f0")
    assert desc and "stand-in" in desc
    assert torch.equal(net.state_dict()["enc_p.emb_phone.weight"], sd["enc_p.emb_phone.weight"].float())
    # deterministic values, seeded by the key
    key = "dec.ups.0.weight_v"
    assert torch.equal(sd[key], deterministic_tensor(key, tuple(sd[key].shape)).half())


@pytest.mark.parametrize(
    ("version", "sr", "use_f0", "says"),
    [
        ("v2", "40k", True, "f0G48k.pth is a v2 48k generator with pitch guidance (f0) but this run is v2 40k f0"),
        ("v1", "48k", True, "is a v2 48k generator"),
        ("v2", "48k", False, "use pretrained_v2/G48k.pth instead"),
    ],
)
def test_pretrained_for_another_variant_is_refused_clearly(standin_g48, version, sr, use_f0, says):
    net = _meta_generator(version, sr, use_f0)
    with pytest.raises(UserInputError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_pretrained(standin_g48, net, "G", f"{version} {sr} {'f0' if use_f0 else 'nof0'}")


def test_generator_file_given_as_discriminator_is_refused(standin_g48):
    with torch.device("meta"):
        d = build_discriminator("v2")
    with pytest.raises(UserInputError, match="generator"):
        load_pretrained(standin_g48, d, "D", "v2 48k f0")


def test_pretrained_discriminator_loads_and_wrong_version_is_refused(tmp_path):
    torch.manual_seed(0)
    d1 = build_discriminator("v1")
    dtype = torch.float16
    sd = _parametrizations_names({k: v.to(dtype) for k, v in d1.state_dict().items()})  # newer torch naming
    path = tmp_path / "f0D40k.pth"
    torch.save({"model": sd}, path)
    assert identify_discriminator(torch.load(path, weights_only=True)["model"]) == "v1"
    with torch.device("meta"):
        d2 = build_discriminator("v2")
    with pytest.raises(UserInputError, match="f0D40k.pth is a v1 discriminator but this run is v2 40k f0"):
        load_pretrained(path, d2, "D", "v2 40k f0")
    torch.manual_seed(1)
    fresh = build_discriminator("v1")
    assert load_pretrained(path, fresh, "D", "v1 40k f0") is None
    key = "discriminators.3.convs.2.weight_v"
    assert torch.equal(fresh.state_dict()[key], d1.state_dict()[key].to(dtype).float())


# ------------------------------------------------------------------------------ tiny pretrained files
@pytest.mark.parametrize(("dtype", "param_names"), [(torch.float16, False), (torch.float32, True)])
def test_tiny_pretrained_generator_roundtrip(tmp_path, tiny_config, dtype, param_names):
    cfg = tiny_config("v1", "40k")
    torch.manual_seed(0)
    src = build_generator(cfg, False)
    sd = {k: v.to(dtype) for k, v in src.state_dict().items()}
    if param_names:
        sd = _parametrizations_names(sd)
        assert any("parametrizations" in k for k in sd)
    path = tmp_path / "G40k.pth"
    torch.save({"model": sd}, path)
    torch.manual_seed(1)
    dst = build_generator(cfg, False)
    assert load_pretrained(path, dst, "G") is None
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v.to(dtype).float()), k
    # the same weights refused by a pitch-guided model
    with pytest.raises(UserInputError, match="without pitch guidance"):
        load_pretrained(path, build_generator(cfg, True), "G", "v1 40k f0")


def test_unreadable_and_unsafe_files_are_refused(tmp_path, tiny_config):
    bad = tmp_path / "f0G40k.pth"
    bad.write_bytes(b"<html>not found</html>")
    net = build_generator(tiny_config("v2", "40k"), True)
    with pytest.raises(UserInputError, match="cannot be read"):
        load_pretrained(bad, net, "G")
    with pytest.raises(UserInputError, match="does not exist"):
        load_pretrained(tmp_path / "missing.pth", net, "G")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": net.state_dict(), "args": argparse.Namespace(lr=1)}, unsafe)
    with pytest.raises(UserInputError, match=r"\(e.g. argparse.Namespace\), which we refuse to load for safety"):
        load_pretrained(unsafe, net, "G")


# ------------------------------------------------------------------------------ training checkpoints
def test_training_checkpoint_resume_restores_model_and_optimizer(tmp_path, tiny_config):
    cfg = tiny_config("v2", "40k")
    torch.manual_seed(0)
    net = build_generator(cfg, True)
    opt = torch.optim.AdamW(net.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    net.emb_g.weight.sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "G_7.pth", net, opt, 1e-4, 3)
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"model", "iteration", "optimizer", "learning_rate"}
    assert obj["iteration"] == 3 and "dec.ups.0.weight_g" in obj["model"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind

    torch.manual_seed(1)
    net2 = build_generator(cfg, True)
    opt2 = torch.optim.AdamW(net2.parameters(), 1e-4, betas=(0.8, 0.99), eps=1e-9)
    assert load_checkpoint(path, net2, opt2) == (3, 1e-4)
    assert all(torch.equal(v, net2.state_dict()[k]) for k, v in net.state_dict().items())
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)

    with pytest.raises(UserInputError, match="G_7.pth does not fit this model"):
        load_checkpoint(path, build_generator(cfg, False))


# ------------------------------------------------------------------------------ voice models
@pytest.fixture
def tiny_g(tiny_config):
    cfg = tiny_config("v2", "40k")
    torch.manual_seed(0)
    return cfg, build_generator(cfg, True)


def test_export_writes_reference_and_applio_layout(tmp_path, tiny_g):
    cfg, net = tiny_g
    path = export_small_model(
        net.state_dict(), cfg, True, "joe", 12, 345, tmp_path / "joe.pth", dataset_length=59.7, author="me"
    )
    obj = torch.load(path, weights_only=True)
    assert REFERENCE_KEYS | APPLIO_KEYS <= set(obj)
    assert obj["info"] == "12epoch" and obj["sr"] == "40k" and obj["f0"] == 1 and obj["version"] == "v2"
    assert obj["epoch"] == 12 and obj["step"] == 345 and obj["model_name"] == "joe" and obj["author"] == "me"
    assert obj["dataset_length"] == 59.7 and obj["embedder_model"] == "contentvec" and obj["speakers_id"] == 1
    assert obj["vocoder"] == "HiFi-GAN" and len(obj["model_hash"]) == 64
    assert not any(k.startswith("enc_q.") for k in obj["weight"])
    assert all(v.dtype == torch.float16 for v in obj["weight"].values())
    c = obj["config"]
    m = cfg.model
    assert len(c) == 18 and c[0] == 1025 and c[1] == 32 and c[-1] == 40000
    assert c[2:9] == [m.inter_channels, m.hidden_channels, m.filter_channels, m.n_heads, m.n_layers, m.kernel_size, 0]
    assert c[9] == "1" and c[12] == [10, 10, 2, 2] and c[-3] == m.spk_embed_dim and c[-2] == m.gin_channels
    with pytest.raises(TypeError, match="unknown export option"):
        export_small_model(net.state_dict(), cfg, True, "joe", 1, 1, tmp_path / "x.pth", vocoder="RefineGAN")


def test_export_import_roundtrips_bit_exactly_in_fp16(tmp_path, tiny_g):
    cfg, net = tiny_g
    net.eval()
    path = export_small_model(net.state_dict(), cfg, True, "joe", 3, 30, tmp_path / "joe.pth")
    sm = load_small_model(path)
    assert (sm.version, sm.use_f0, sm.sr, sm.sample_rate, sm.epoch, sm.step) == ("v2", True, 40000, "40k", 3, 30)
    assert sm.info == "3epoch" and sm.name == "joe" and sm.n_speakers == cfg.model.spk_embed_dim
    expected = {k: v.half() for k, v in net.state_dict().items() if not k.startswith("enc_q.")}
    assert sm.weight.keys() == expected.keys()
    assert all(sm.weight[k].dtype == torch.float16 and torch.equal(sm.weight[k], v) for k, v in expected.items())
    # the exported file of an imported model is the same bits
    again = load_small_model(export_small_model(sm.weight, sm.to_config(), sm.use_f0, "joe", 3, 30, tmp_path / "b.pth"))
    assert all(torch.equal(again.weight[k], v) for k, v in sm.weight.items())

    g2 = build_generator_from_small_model(sm, "cpu")
    assert not g2.training and g2.cfg.sr == 40000 and g2.use_f0 and not hasattr(g2, "enc_q")
    ref = build_generator(cfg, True).eval()
    ref.load_state_dict({k: v.float() for k, v in expected.items()}, strict=False)
    t = 15
    phone, lengths = torch.randn(1, t, 768), torch.tensor([t])
    pitch, pitchf = torch.randint(1, 256, (1, t)), torch.full((1, t), 150.0)
    torch.manual_seed(5)
    a = g2.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))[0]
    torch.manual_seed(5)
    b = ref.infer(phone, lengths, pitch, pitchf, torch.tensor([0]))[0]
    assert a.shape == (1, 1, t * 400)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_rvc_webui_v1_file_without_version_and_f0_loads(tmp_path, tiny_config):
    cfg = tiny_config("v1", "48k")
    torch.manual_seed(0)
    net = build_generator(cfg, False)
    weight = collections.OrderedDict((k, v.half()) for k, v in net.state_dict().items() if not k.startswith("enc_q"))
    config = [
        1025,
        32,
        16,
        16,
        32,
        2,
        2,
        3,
        0,
        "1",
        [3],
        [[1, 3]],
        [10, 6, 2, 2, 2],
        32,
        [16, 16, 4, 4, 4],
        1,
        16,
        48000,
    ]
    path = tmp_path / "old.pth"
    torch.save({"weight": weight, "config": config, "info": "200epoch"}, path)
    sm = load_small_model(path)
    assert (sm.version, sm.use_f0, sm.sr, sm.epoch) == ("v1", False, 48000, 200)
    assert sm.config[-3] == cfg.model.spk_embed_dim  # set from emb_g, as RVC's loaders do
    g = build_generator_from_small_model(sm)
    audio = g.infer(torch.randn(1, 10, 256), torch.tensor([10]), None, None, torch.tensor([0]))[0]
    assert audio.shape == (1, 1, 10 * 480)


def test_applio_file_with_parametrization_names_loads_and_other_vocoders_are_refused(tmp_path, tiny_g):
    cfg, net = tiny_g
    weight = _parametrizations_names({k: v.half() for k, v in net.state_dict().items() if "enc_q" not in k})
    obj = torch.load(export_small_model(net.state_dict(), cfg, True, "x", 1, 2, tmp_path / "x.pth"), weights_only=True)
    obj.update(weight=weight, f0=True, sr=40000, overtrain_info="x")
    path = tmp_path / "applio.pth"
    torch.save(obj, path)
    sm = load_small_model(path)
    assert sm.use_f0 and sm.version == "v2" and sm.vocoder == SUPPORTED_VOCODER
    assert "dec.ups.0.weight_g" in sm.weight and sm.extras["overtrain_info"] == "x"
    build_generator_from_small_model(sm)

    obj["vocoder"] = "RefineGAN"
    torch.save(obj, path)
    with pytest.raises(UserInputError, match="'RefineGAN' vocoder"):
        load_small_model(path)


def test_wrong_files_given_as_voice_model_are_refused(tmp_path, tiny_g):
    cfg, net = tiny_g
    ckpt = tmp_path / "G_100.pth"
    torch.save({"model": net.state_dict(), "iteration": 1}, ckpt)
    with pytest.raises(UserInputError, match="not an exported voice model"):
        load_small_model(ckpt)
    obj = torch.load(export_small_model(net.state_dict(), cfg, True, "x", 1, 2, tmp_path / "x.pth"), weights_only=True)
    obj["config"][-1] = 44100
    torch.save(obj, tmp_path / "odd.pth")
    with pytest.raises(UserInputError, match="44100 Hz"):
        load_small_model(tmp_path / "odd.pth")
    with pytest.raises(UserInputError, match="exported voice model"):
        load_pretrained(tmp_path / "x.pth", net, "G")
