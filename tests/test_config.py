import dataclasses
import json
import math

import pytest

from infer.lib.config import SAMPLE_RATES, VERSIONS, config_from_dict, load_config
from infer.lib.errors import ConfigError, UserInputError
from infer.lib.layout import ExperimentLayout


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sr", list(SAMPLE_RATES))
def test_all_six_configs_load_and_hold_invariants(version, sr):
    cfg = load_config(version, sr)
    assert cfg.sr == SAMPLE_RATES[sr] == cfg.data.sampling_rate
    assert math.prod(cfg.model.upsample_rates) == cfg.data.hop_length
    assert cfg.train.segment_size % cfg.data.hop_length == 0
    assert cfg.content_dim == (256 if version == "v1" else 768)
    # reference values shared by all six
    assert cfg.train.learning_rate == 1e-4 and cfg.train.betas == (0.8, 0.99) and cfg.train.eps == 1e-9
    assert cfg.train.lr_decay == 0.999875 and cfg.train.c_mel == 45 and cfg.train.c_kl == 1.0
    assert cfg.model.hidden_channels == 192 and cfg.model.gin_channels == 256 and cfg.model.spk_embed_dim == 109


def test_reference_specific_values():
    assert load_config("v1", "40k").model.upsample_rates == (10, 10, 2, 2)
    assert load_config("v2", "48k").model.upsample_rates == (12, 10, 2, 2)
    assert load_config("v2", "48k").train.segment_size == 17280
    assert load_config("v1", "48k").train.segment_size == 11520
    assert load_config("v2", "32k").model.upsample_kernel_sizes == (20, 16, 4, 4)
    # v2 at 40k uses the v1 40k values, as the reference does
    assert load_config("v2", "40k").to_dict() == load_config("v1", "40k").to_dict()


def test_round_trip_through_json(repo_root):
    cfg = load_config("v2", "32k")
    raw = json.loads((repo_root / "configs/v2/32k.json").read_text())
    assert cfg.to_dict() == raw
    assert config_from_dict(cfg.to_dict(), "v2", "32k") == cfg


def _raw(version="v1", sr="40k"):
    return load_config(version, sr).to_dict()


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda r: r["train"].update(bogus=1), "unknown key(s) ['bogus']"),
        (lambda r: r["model"].pop("gin_channels"), "missing key(s) ['gin_channels']"),
        (lambda r: r.update(extra={}), "unknown section(s) ['extra']"),
        (lambda r: r["model"].update(upsample_rates=[10, 10, 4, 2]), "must equal data.hop_length 400"),
        (lambda r: r["train"].update(segment_size=12801), "must be a multiple of data.hop_length"),
        (lambda r: r["data"].update(sampling_rate=48000), "does not match the config's sample rate '40k'"),
        (lambda r: r["train"].update(batch_size="4"), "train.batch_size: expected int"),
        (lambda r: r["model"].update(resblock="3"), "resblock must be '1' or '2'"),
    ],
)
def test_broken_configs_are_rejected_clearly(mutate, needle):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw, "v1", "40k", source="broken.json")
    assert needle in str(e.value)
    assert "broken.json" in str(e.value)
    assert isinstance(e.value, UserInputError)


def test_broken_file_on_disk(tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "40k.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config("v1", "40k", configs_dir=tmp_path)
    with pytest.raises(ConfigError, match="missing"):
        load_config("v1", "32k", configs_dir=tmp_path)
    with pytest.raises(ConfigError, match="sample_rate"):
        load_config("v1", "44k")


def test_replace_is_validated_and_configs_are_frozen():
    cfg = load_config("v2", "40k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.version = "v1"  # type: ignore[misc]  # the read-only error under test; mypy reports it too
    with pytest.raises(ConfigError):
        dataclasses.replace(
            cfg,
            model=dataclasses.replace(cfg.model, upsample_rates=(10, 10, 4, 2), upsample_kernel_sizes=(16, 16, 4, 4)),
        )


def test_tiny_config_is_valid(tiny_config):
    cfg = tiny_config("v1", "32k")
    assert cfg.model.hidden_channels == 16 and cfg.data.hop_length == 320


def test_experiment_layout_names(tmp_path):
    exp = ExperimentLayout(tmp_path / "exp", "v1")
    assert exp.gt_wavs_dir.name == "0_gt_wavs" and exp.wavs16k_dir.name == "1_16k_wavs"
    assert exp.f0_dir.name == "2a_f0" and exp.f0nsf_dir.name == "2b-f0nsf"
    assert exp.feature_dir.name == "3_feature256"
    assert ExperimentLayout(tmp_path, "v2").feature_dir.name == "3_feature768"
    assert exp.feature_file("0_3.wav").name == "0_3.npy" and exp.f0_file("0_3.wav").name == "0_3.wav.npy"
    assert exp.index_path("joe", 123).name == "added_IVF123_Flat_nprobe_1_joe_v1.index"
    with pytest.raises(ValueError):
        ExperimentLayout(tmp_path, "v3")
