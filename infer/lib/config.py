"""Model and training hyper-parameters: `configs/<version>/<sr>.json` as frozen, validated dataclasses.

The JSON files hold the reference RVC values in three sections (`train`, `data`, `model`). The
reference has no `configs/v2/40k.json`: it trains v2 at 40 kHz with the v1 40 kHz values, so our
`configs/v2/40k.json` is a copy of `configs/v1/40k.json`.

Every dataclass validates itself in `__post_init__`, so `dataclasses.replace` (used by tests to make
tiny configurations) is checked as strictly as loading a file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from infer.lib.errors import ConfigError
from infer.lib.options import SAMPLE_RATES as SAMPLE_RATE_NAMES
from infer.lib.options import VERSIONS

#: Hz of each sample-rate name of `infer.lib.options` ("40k" -> 40000).
SAMPLE_RATES: dict[str, int] = {name: int(name.removesuffix("k")) * 1000 for name in SAMPLE_RATE_NAMES}
CONTENT_DIMS: dict[str, int] = {"v1": 256, "v2": 768}
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


@dataclass(frozen=True)
class TrainParams:
    """The `train` section: optimiser and loss settings (learning rate per step, decay per epoch)."""

    log_interval: int
    seed: int
    epochs: int
    learning_rate: float
    betas: tuple[float, float]
    eps: float
    batch_size: int
    fp16_run: bool
    lr_decay: float
    segment_size: int  # audio samples per training slice
    init_lr_ratio: float
    warmup_epochs: int
    c_mel: float
    c_kl: float

    def __post_init__(self) -> None:
        w = "train"
        object.__setattr__(self, "betas", tuple(self.betas))
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            w,
            f"betas must be two numbers in [0, 1), got {self.betas}",
        )
        _check(self.learning_rate > 0, w, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(self.eps > 0, w, f"eps must be > 0, got {self.eps}")
        _check(self.batch_size >= 1, w, f"batch_size must be >= 1, got {self.batch_size}")
        _check(0 < self.lr_decay <= 1, w, f"lr_decay must be in (0, 1], got {self.lr_decay}")
        _check(self.segment_size > 0, w, f"segment_size must be > 0, got {self.segment_size}")
        _check(self.epochs >= 1 and self.log_interval >= 1, w, "epochs and log_interval must be >= 1")
        _check(self.c_mel >= 0 and self.c_kl >= 0, w, "loss weights c_mel and c_kl must be >= 0")


@dataclass(frozen=True)
class DataParams:
    """The `data` section: audio and STFT settings (samples at `sampling_rate` Hz)."""

    max_wav_value: float
    sampling_rate: int
    filter_length: int  # n_fft
    hop_length: int
    win_length: int
    n_mel_channels: int
    mel_fmin: float
    mel_fmax: float | None

    def __post_init__(self) -> None:
        w = "data"
        _check(
            self.sampling_rate in SAMPLE_RATES.values(),
            w,
            f"sampling_rate must be one of {sorted(SAMPLE_RATES.values())}, got {self.sampling_rate}",
        )
        _check(self.hop_length > 0 and self.filter_length > 0, w, "hop_length and filter_length must be > 0")
        _check(
            0 < self.win_length <= self.filter_length,
            w,
            f"win_length ({self.win_length}) must be in (0, filter_length={self.filter_length}]",
        )
        _check(self.n_mel_channels > 0, w, "n_mel_channels must be > 0")
        fmax = self.mel_fmax if self.mel_fmax is not None else self.sampling_rate / 2
        _check(
            0 <= self.mel_fmin < fmax <= self.sampling_rate / 2,
            w,
            f"need 0 <= mel_fmin < mel_fmax <= sr/2, got {self.mel_fmin}, {self.mel_fmax}",
        )

    @property
    def spec_channels(self) -> int:
        """Linear spectrogram bins: `filter_length // 2 + 1`."""
        return self.filter_length // 2 + 1


@dataclass(frozen=True)
class ModelParams:
    """The `model` section: synthesizer architecture."""

    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    use_spectral_norm: bool
    gin_channels: int
    spk_embed_dim: int

    def __post_init__(self) -> None:
        w = "model"
        object.__setattr__(self, "resblock_kernel_sizes", tuple(self.resblock_kernel_sizes))
        object.__setattr__(self, "resblock_dilation_sizes", tuple(tuple(d) for d in self.resblock_dilation_sizes))
        object.__setattr__(self, "upsample_rates", tuple(self.upsample_rates))
        object.__setattr__(self, "upsample_kernel_sizes", tuple(self.upsample_kernel_sizes))
        _check(self.resblock in ("1", "2"), w, f"resblock must be '1' or '2', got {self.resblock!r}")
        _check(
            len(self.resblock_kernel_sizes) == len(self.resblock_dilation_sizes),
            w,
            "resblock_kernel_sizes and resblock_dilation_sizes must have the same length",
        )
        _check(
            len(self.upsample_rates) == len(self.upsample_kernel_sizes),
            w,
            "upsample_rates and upsample_kernel_sizes must have the same length",
        )
        _check(
            self.hidden_channels % self.n_heads == 0,
            w,
            f"hidden_channels ({self.hidden_channels}) must be divisible by n_heads ({self.n_heads})",
        )
        _check(0 <= self.p_dropout < 1, w, f"p_dropout must be in [0, 1), got {self.p_dropout}")
        _check(
            self.upsample_initial_channel >= 2 ** len(self.upsample_rates),
            w,
            "upsample_initial_channel too small for the number of upsampling stages",
        )
        for name in (
            "inter_channels",
            "hidden_channels",
            "filter_channels",
            "n_heads",
            "n_layers",
            "kernel_size",
            "gin_channels",
            "spk_embed_dim",
        ):
            _check(getattr(self, name) >= 1, w, f"{name} must be >= 1")


@dataclass(frozen=True)
class RVCConfig:
    """One variant's full configuration (`version` v1/v2, `sample_rate` "32k"/"40k"/"48k")."""

    version: str
    sample_rate: str
    train: TrainParams
    data: DataParams
    model: ModelParams

    def __post_init__(self) -> None:
        _check(self.version in VERSIONS, "config", f"version must be one of {VERSIONS}, got {self.version!r}")
        _check(
            self.sample_rate in SAMPLE_RATES,
            "config",
            f"sample rate must be one of {list(SAMPLE_RATES)}, got {self.sample_rate!r}",
        )
        _check(
            self.data.sampling_rate == SAMPLE_RATES[self.sample_rate],
            "data.sampling_rate",
            f"{self.data.sampling_rate} does not match the config's sample rate {self.sample_rate!r} ({SAMPLE_RATES[self.sample_rate]})",
        )
        _check(
            math.prod(self.model.upsample_rates) == self.data.hop_length,
            "model.upsample_rates",
            f"product {math.prod(self.model.upsample_rates)} must equal data.hop_length {self.data.hop_length}",
        )
        _check(
            self.train.segment_size % self.data.hop_length == 0,
            "train.segment_size",
            f"{self.train.segment_size} must be a multiple of data.hop_length {self.data.hop_length}",
        )

    @property
    def sr(self) -> int:
        """Sample rate in Hz."""
        return SAMPLE_RATES[self.sample_rate]

    @property
    def content_dim(self) -> int:
        """HuBERT feature width the synthesizer takes: 256 (v1) or 768 (v2)."""
        return CONTENT_DIMS[self.version]

    @property
    def segment_frames(self) -> int:
        """Spectrogram frames per training slice: `segment_size // hop_length`."""
        return self.train.segment_size // self.data.hop_length

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of `configs/<version>/<sr>.json` (lists, not tuples)."""

        def plain(x: Any) -> Any:
            if isinstance(x, tuple | list):
                return [plain(v) for v in x]
            return x

        return {sec: {k: plain(v) for k, v in asdict(getattr(self, sec)).items()} for sec in ("train", "data", "model")}


_SECTIONS: dict[str, type] = {"train": TrainParams, "data": DataParams, "model": ModelParams}
_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}


def _section(cls: type, raw: Any, where: str) -> Any:
    _check(isinstance(raw, dict), where, f"must be an object, got {type(raw).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    missing = sorted(set(names) - set(raw))
    _check(not unknown, where, f"unknown key(s) {unknown}; allowed: {names}")
    _check(not missing, where, f"missing key(s) {missing}")
    for f in fields(cls):
        value = raw[f.name]
        expected = _TYPES.get(str(f.type).split(" |")[0].strip())
        if expected is not None and value is not None:
            ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
            _check(ok, f"{where}.{f.name}", f"expected {f.type}, got {value!r}")
    return cls(**raw)


def config_from_dict(raw: dict[str, Any], version: str, sample_rate: str, source: str = "<dict>") -> RVCConfig:
    """Build and validate an `RVCConfig` from the JSON layout; raises `ConfigError` naming `source`."""
    try:
        _check(isinstance(raw, dict), "config", "must be a JSON object with sections train, data, model")
        unknown = sorted(set(raw) - set(_SECTIONS))
        _check(not unknown, "config", f"unknown section(s) {unknown}; allowed: {list(_SECTIONS)}")
        missing = sorted(set(_SECTIONS) - set(raw))
        _check(not missing, "config", f"missing section(s) {missing}")
        parts = {name: _section(cls, raw[name], name) for name, cls in _SECTIONS.items()}
        return RVCConfig(version=version, sample_rate=sample_rate, **parts)
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"invalid config {source}: {e}") from None


def load_config(version: str, sample_rate: str, configs_dir: Path | None = None) -> RVCConfig:
    """Load `configs/<version>/<sample_rate>.json`, e.g. `load_config("v2", "40k")`."""
    _check(version in VERSIONS, "version", f"must be one of {VERSIONS}, got {version!r}")
    _check(sample_rate in SAMPLE_RATES, "sample_rate", f"must be one of {list(SAMPLE_RATES)}, got {sample_rate!r}")
    path = (configs_dir or CONFIGS_DIR) / version / f"{sample_rate}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} is missing") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
    return config_from_dict(raw, version, sample_rate, source=str(path))


TINY_DISCRIMINATOR_PERIODS = (2,)
"""The multi-period discriminator trained beside `tiny_network` (with the scale discriminator): one
period instead of the version's six or eight: the full-size one would cost most of a tiny training step."""


def tiny_network(cfg: RVCConfig) -> RVCConfig:
    """`cfg` with a synthesizer small enough for CPU tests, the demo's test mode and smoke benchmarks.

    Only channel widths and depths shrink; rates, hop and upsampling stay, so data and files keep the
    real layout. Never for a real voice: the model is useless.
    """
    model = replace(
        cfg.model,
        inter_channels=16,
        hidden_channels=16,
        filter_channels=32,
        n_heads=2,
        n_layers=2,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3),),
        upsample_initial_channel=32,
        gin_channels=16,
    )
    return replace(cfg, model=model)
