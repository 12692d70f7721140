"""Model files: published pretrained G/D, training checkpoints, exported voice ("small") models.

On-disk layouts (the reference RVC ones, so RVC WebUI and Applio read what we write and vice versa):
- pretrained `f0G40k.pth`, `f0D40k.pth`, ...: `{"model": state_dict}` (fp16 or fp32);
- training checkpoints `G_<step>.pth` / `D_<step>.pth`: `{"model", "iteration", "optimizer", "learning_rate"}`;
- voice model `<name>.pth`: `{"weight": fp16 state dict without enc_q.*, "config": [18 values], "info":
  "<N>epoch", "sr": "40k", "f0": 1|0, "version": "v1"|"v2"}` plus Applio's keys (`epoch`, `step`,
  `creation_date`, `model_hash`, `dataset_length`, `model_name`, `author`, `embedder_model`,
  `speakers_id`, `vocoder`).

State dicts use the classic weight-norm names (`weight_g`/`weight_v`); the newer
`parametrizations.weight.original0/1` names and `module.` / `_orig_mod.` prefixes are accepted on load.
Everything is read with `torch.load(..., weights_only=True)`: no pickled code runs. A file's variant
(version, pitch guidance, sample rate) is told from its shapes by `infer.lib.model_variant`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import pickle
import re
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infer.lib.config import SAMPLE_RATES, VERSIONS, ModelParams, RVCConfig, load_config
from infer.lib.errors import UserInputError
from infer.lib.fileio import atomic_torch_save
from infer.lib.log import get_logger
from infer.lib.model_variant import generator_signature, identify_discriminator, identify_generator, model_variant
from infer.lib.models.discriminator import MultiPeriodDiscriminator
from infer.lib.models.synthesizer import Synthesizer, build_generator
from infer.lib.standin import pop_standin_marker, warn_standin

_log = get_logger("checkpoint")

PathLike = str | os.PathLike[str]
SUPPORTED_VOCODER = "HiFi-GAN"
_RENAMES = ((".parametrizations.weight.original0", ".weight_g"), (".parametrizations.weight.original1", ".weight_v"))
_APPLIO_EXTRAS = ("dataset_length", "author", "embedder_model", "speakers_id", "creation_date", "overtrain_info")


# ------------------------------------------------------------------------------------------- helpers
def canonical_state_dict(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Classic key names: strip `module.` (DDP) / `_orig_mod.` (torch.compile), parametrizations -> weight_g/v."""
    out: dict[str, Any] = OrderedDict()
    for key, value in sd.items():
        k = str(key)
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        for old, new in _RENAMES:
            if k.endswith(old):
                k = k[: -len(old)] + new
        out[k] = value
    return out


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _load_file(path: PathLike, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"{what} {p} does not exist")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        detail = found.group(1) if found else None
        if detail is None:
            raise UserInputError(
                f"{p.name} cannot be read as a PyTorch file ({what}); it may be truncated, an error page "
                "saved by a download, or not a .pth at all"
            ) from None
        raise UserInputError(
            f"{p.name} is not a plain PyTorch weights file ({what}): it contains pickled objects that are not "
            f"tensors or plain data (e.g. {detail}), which we refuse to load for safety"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zlib.error) as e:
        raise UserInputError(
            f"{p.name} cannot be read as a PyTorch file ({what}); it may be truncated or not a .pth at all: "
            f"{type(e).__name__}: {str(e)[:160]}"
        ) from None


def _state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in unwrap_model(model).state_dict().items()}


def _check_shapes(
    expected: Mapping[str, tuple[int, ...]], sd: Mapping[str, Any], what: str, hint: str, ignore_missing: str = ""
) -> None:
    """UserInputError listing missing / unexpected / mis-shaped keys of `sd` against `expected`."""
    missing = [k for k in expected if k not in sd and not (ignore_missing and k.startswith(ignore_missing))]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} != {expected[k]}"
        for k in expected
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise UserInputError(f"{what} does not fit this model: {'; '.join(problems)}. {hint}")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


# ---------------------------------------------------------------------------------- pretrained G/D
def load_pretrained(path: PathLike, model: nn.Module, kind: str, expect: str | None = None) -> str | None:
    """Load a published pretrained `{"model": state_dict}` file (fp16/fp32) into `model`, strictly.

    `kind` is "G" (a `Synthesizer`) or "D" (a `MultiPeriodDiscriminator`); `expect` names the run's
    variant for messages (e.g. "v2 40k f0"). A file for another version, sample rate or pitch setting
    raises `UserInputError` naming both, e.g. "f0G48k.pth is a v2 48k generator with pitch guidance (f0)
    but this run is v2 40k f0 ...". Returns the stand-in description when the file is a stand-in
    (after logging a loud warning), else None.
    """
    if kind not in ("G", "D"):
        raise ValueError(f"kind must be 'G' or 'D', got {kind!r}")
    p = Path(path)
    what = f"pretrained {kind} file {p.name}"
    sd, standin = _pretrained_state(p, kind, _load_file(p, what))
    target = unwrap_model(model)
    if kind == "G":
        label = _check_pretrained_generator(p.name, sd, target, expect)
    else:
        label = _check_pretrained_discriminator(p.name, sd, target, expect)
    _check_shapes(_state_shapes(target), sd, what, f"This run is {label}; pick the matching pretrained file.")
    target.load_state_dict(sd, strict=True)
    if standin is not None:
        warn_standin(what, standin)
    return standin


def _pretrained_state(p: Path, kind: str, obj: Any) -> tuple[dict[str, Any], str | None]:
    """(state dict with classic names, stand-in description or None) of a loaded pretrained file."""
    standin = pop_standin_marker(obj) if isinstance(obj, dict) else None
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        raw = dict(obj["model"])
    elif isinstance(obj, Mapping) and "weight" in obj and "config" in obj:
        raise UserInputError(
            f"{p.name} is an exported voice model (inference weights, no posterior encoder), not a pretrained "
            f"{kind} file: pick a pretrained file such as f0{kind}40k.pth"
        )
    elif _is_state_dict(obj):
        raw = dict(obj)
    else:
        raise UserInputError(f"{p.name} is not a pretrained {kind} file (expected a dict with a 'model' state dict)")
    standin = pop_standin_marker(raw) or standin
    return canonical_state_dict(raw), standin


def _check_pretrained_generator(name: str, sd: Mapping[str, Any], target: nn.Module, expect: str | None) -> str:
    """Refuse a generator file for another variant than `target`; the run's label for messages."""
    if not isinstance(target, Synthesizer):
        raise TypeError(f"kind 'G' needs a Synthesizer, got {type(target).__name__}")
    if any(k.startswith("discriminators.") for k in sd):
        raise UserInputError(f"{name} is a discriminator (D) file but was given as the pretrained generator (G)")
    found, want = identify_generator(sd), model_variant(target)
    label = expect or f"{target.cfg.version} {target.cfg.sample_rate} {'f0' if target.use_f0 else 'nof0'}"
    differs = (found.version, found.use_f0) != (want.version, want.use_f0) or (
        found.sample_rate is not None and want.sample_rate is not None and found.sample_rate != want.sample_rate
    )
    if differs or generator_signature(sd) != generator_signature(target.state_dict()):
        right = want.pretrained_name()
        raise UserInputError(
            f"{name} is a {found.describe()} but this run is {label} ({want.describe()})"
            + (f": use {right} instead" if right else "")
        )
    return label


def _check_pretrained_discriminator(name: str, sd: Mapping[str, Any], target: nn.Module, expect: str | None) -> str:
    """Refuse a discriminator file for another version than `target`; the run's label for messages."""
    if not isinstance(target, MultiPeriodDiscriminator):
        raise TypeError(f"kind 'D' needs a MultiPeriodDiscriminator, got {type(target).__name__}")
    if any(k.startswith("enc_p.") for k in sd):
        raise UserInputError(f"{name} is a generator (G) file but was given as the pretrained discriminator (D)")
    found_v = identify_discriminator(sd)
    want_v = identify_discriminator(target.state_dict())
    label = expect or f"{want_v}"
    if found_v != want_v:
        raise UserInputError(
            f"{name} is a {found_v or 'non-standard'} discriminator but this run is {label} "
            f"(needs a {want_v} discriminator): use the D file from the "
            f"{'pretrained_v2' if want_v == 'v2' else 'pretrained'} folder"
        )
    return label


# ---------------------------------------------------------------------------- training checkpoints
def save_checkpoint(
    path: PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    learning_rate: float,
    iteration: int,
) -> Path:
    """Write `{"model", "iteration", "optimizer", "learning_rate"}` atomically (the reference layout)."""
    p = Path(path)
    state = {
        "model": unwrap_model(model).state_dict(),
        "iteration": int(iteration),
        "optimizer": optimizer.state_dict(),
        "learning_rate": float(learning_rate),
    }
    atomic_torch_save(state, p)
    return p


def load_checkpoint(
    path: PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> tuple[int, float]:
    """Restore model (strictly) and, if given, optimizer state from a training checkpoint.

    Reads ours and the reference's `G_*.pth` / `D_*.pth`. Returns (iteration, learning_rate).
    """
    p = Path(path)
    what = f"checkpoint {p.name}"
    obj = _load_file(p, what)
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        raise UserInputError(f"{p.name} is not a training checkpoint (expected keys model, iteration, optimizer)")
    raw = dict(obj["model"])
    standin = pop_standin_marker(raw)
    sd = canonical_state_dict(raw)
    target = unwrap_model(model)
    _check_shapes(
        _state_shapes(target),
        sd,
        what,
        "It was written for another model variant: resume with the same version, sample rate and pitch "
        "setting, or start a new experiment folder.",
    )
    target.load_state_dict(sd, strict=True)
    if optimizer is not None and obj.get("optimizer") is not None:
        try:
            optimizer.load_state_dict(obj["optimizer"])
        except (ValueError, KeyError) as e:
            raise UserInputError(f"{what}: optimizer state does not fit this model ({e})") from None
    if standin is not None:
        warn_standin(what, standin)
    return int(obj.get("iteration", 0)), float(obj.get("learning_rate", 0.0))


# ------------------------------------------------------------------------------ small voice models
@dataclass(frozen=True)
class ConfigSlot:
    """One item of a voice model's 18-item `config` list: its name, position and type.

    `kind`: "int", "float", "str", "ints" (a list of ints on disk, a tuple in `ModelParams`) or
    "int_lists" (a list of int lists on disk, a tuple of tuples in `ModelParams`). Slots named after
    a `ModelParams` field are read back into that field; the others are derived (see `small_model_config`).
    """

    name: str
    position: int
    kind: str

    def to_disk(self, value: Any) -> Any:
        """`value` as the reference writes it (sequences as lists, scalars unchanged)."""
        if self.kind == "ints":
            return list(value)
        if self.kind == "int_lists":
            return [list(x) for x in value]
        return value

    def from_disk(self, value: Any) -> Any:
        """The `ModelParams` form of a value read from a file; TypeError/ValueError when it has another type."""
        if self.kind == "ints":
            return tuple(int(x) for x in value)
        if self.kind == "int_lists":
            return tuple(tuple(int(y) for y in x) for x in value)
        return {"int": int, "float": float, "str": str}[self.kind](value)

    def read(self, config: Sequence[Any]) -> Any:
        """This slot's value in a `config` list read from a file, in its `ModelParams` form."""
        return self.from_disk(config[self.position])


#: The reference's order. `spec_channels` is n_fft // 2 + 1, `segment_size` a literal 32 (unused on load),
#: `spk_embed_dim` the number of speakers (rows of `emb_g.weight`), `sampling_rate` in Hz.
SMALL_MODEL_CONFIG: tuple[ConfigSlot, ...] = tuple(
    ConfigSlot(name, position, kind)
    for position, (name, kind) in enumerate(
        (
            ("spec_channels", "int"),
            ("segment_size", "int"),
            ("inter_channels", "int"),
            ("hidden_channels", "int"),
            ("filter_channels", "int"),
            ("n_heads", "int"),
            ("n_layers", "int"),
            ("kernel_size", "int"),
            ("p_dropout", "float"),
            ("resblock", "str"),
            ("resblock_kernel_sizes", "ints"),
            ("resblock_dilation_sizes", "int_lists"),
            ("upsample_rates", "ints"),
            ("upsample_initial_channel", "int"),
            ("upsample_kernel_sizes", "ints"),
            ("spk_embed_dim", "int"),
            ("gin_channels", "int"),
            ("sampling_rate", "int"),
        )
    )
)
_SLOT = {slot.name: slot for slot in SMALL_MODEL_CONFIG}
_MODEL_SLOTS = tuple(
    slot for slot in SMALL_MODEL_CONFIG if slot.name in {f.name for f in dataclasses.fields(ModelParams)}
)
_SPEAKERS = _SLOT["spk_embed_dim"].position
_RATE = _SLOT["sampling_rate"].position


def small_model_config(cfg: RVCConfig) -> list[Any]:
    """The 18-item `config` list of a voice model, in the order of `SMALL_MODEL_CONFIG`."""
    derived = {
        "spec_channels": cfg.data.filter_length // 2 + 1,
        "segment_size": 32,
        "sampling_rate": cfg.data.sampling_rate,
    }
    return [
        slot.to_disk(derived[slot.name] if slot.name in derived else getattr(cfg.model, slot.name))
        for slot in SMALL_MODEL_CONFIG
    ]


def export_small_model(
    generator_state_dict: Mapping[str, torch.Tensor],
    cfg: RVCConfig,
    use_f0: bool,
    name: str,
    epoch: int,
    step: int,
    path: PathLike,
    **applio_extras: Any,
) -> Path:
    """Write the voice model RVC WebUI and Applio load: fp16 weights without `enc_q.*` + metadata.

    `applio_extras` may set `dataset_length` (seconds of training audio), `author`, `embedder_model`
    (default "contentvec"), `speakers_id` (default 1), `creation_date` (ISO), `overtrain_info`.
    The state dict must be the generator's (classic or parametrizations names) for `cfg` / `use_f0`.
    """
    unknown = sorted(set(applio_extras) - set(_APPLIO_EXTRAS))
    if unknown:
        raise TypeError(f"unknown export option(s) {unknown}; allowed: {list(_APPLIO_EXTRAS)}")
    weight = _inference_weights(generator_state_dict, cfg, use_f0)
    config = small_model_config(cfg)
    config[_SPEAKERS] = int(weight["emb_g.weight"].shape[0])
    hash_input = f"{name}-{epoch}-{step}-{cfg.sample_rate}-{cfg.version}-{config}"
    opt: dict[str, Any] = OrderedDict()
    opt["weight"] = weight
    opt["config"] = config
    opt["info"] = f"{int(epoch)}epoch"
    opt["sr"] = cfg.sample_rate
    opt["f0"] = int(bool(use_f0))
    opt["version"] = cfg.version
    opt["epoch"] = int(epoch)
    opt["step"] = int(step)
    opt["creation_date"] = applio_extras.get("creation_date") or datetime.datetime.now().isoformat()
    opt["model_hash"] = hashlib.sha256(hash_input.encode()).hexdigest()
    opt["overtrain_info"] = applio_extras.get("overtrain_info")
    opt["dataset_length"] = applio_extras.get("dataset_length")
    opt["model_name"] = name
    opt["author"] = applio_extras.get("author")
    opt["embedder_model"] = applio_extras.get("embedder_model", "contentvec")
    opt["speakers_id"] = int(applio_extras.get("speakers_id", 1))
    opt["vocoder"] = SUPPORTED_VOCODER
    p = Path(path)
    atomic_torch_save(opt, p)
    return p


def _inference_weights(sd: Mapping[str, torch.Tensor], cfg: RVCConfig, use_f0: bool) -> dict[str, torch.Tensor]:
    """A generator state dict checked against `cfg`, classic names, fp16 on the CPU, without `enc_q.*`."""
    sd = canonical_state_dict(sd)
    with torch.device("meta"):
        expected = _state_shapes(build_generator(cfg, use_f0))
    _check_shapes(
        expected,
        sd,
        "generator state dict",
        f"Export needs the {cfg.version} {cfg.sample_rate} generator weights.",
        ignore_missing="enc_q.",
    )
    return OrderedDict(
        (k, v.detach().to(device="cpu", dtype=torch.float16).contiguous())
        for k, v in sd.items()
        if not k.startswith("enc_q.")
    )


@dataclass(frozen=True)
class SmallModel:
    """A voice model read from disk (ours, RVC WebUI's or Applio's).

    `weight`: state dict as stored (usually fp16), classic names, no `enc_q.*`; `config`: the 18 items of
    `SMALL_MODEL_CONFIG` with `spk_embed_dim` set to the number of speakers; `sr`: Hz from its
    `sampling_rate`; `version`/`use_f0` from the weights' shapes; `extras`: every other top-level key
    (Applio metadata...).
    """

    path: Path
    weight: dict[str, torch.Tensor]
    config: list[Any]
    version: str
    use_f0: bool
    sr: int
    sample_rate: str
    info: str
    name: str | None = None
    epoch: int | None = None
    step: int | None = None
    vocoder: str = SUPPORTED_VOCODER
    extras: dict[str, Any] = field(default_factory=dict)
    standin: str | None = None

    @property
    def n_speakers(self) -> int:
        return int(self.config[_SPEAKERS])

    @property
    def content_dim(self) -> int:
        return 768 if self.version == "v2" else 256

    def to_config(self) -> RVCConfig:
        """An `RVCConfig` whose model section is this file's (training settings: the defaults of its variant)."""
        c = self.config
        base = load_config(self.version, self.sample_rate)
        try:
            model = dataclasses.replace(base.model, **{slot.name: slot.read(c) for slot in _MODEL_SLOTS})
            hop = math.prod(model.upsample_rates)
            n_fft = (_SLOT["spec_channels"].read(c) - 1) * 2
            data = dataclasses.replace(
                base.data, filter_length=n_fft, hop_length=hop, win_length=min(base.data.win_length, n_fft)
            )
            train = dataclasses.replace(base.train, segment_size=hop * base.segment_frames)
            return dataclasses.replace(base, model=model, data=data, train=train)
        except (TypeError, ValueError, IndexError) as e:
            raise UserInputError(f"{self.path.name}: invalid model config {c!r}: {e}") from None


def load_small_model(path: PathLike) -> SmallModel:
    """Read a voice model `.pth` safely (weights_only) and validate it; UserInputError for wrong files.

    Older RVC v1 files without `version`/`f0` are handled (both are read from the weights' shapes, which
    also win when the declared values disagree). Files for a vocoder other than HiFi-GAN (Applio's
    RefineGAN / MRF HiFi-GAN) are refused with a clear message.
    """
    p = Path(path)
    obj = _voice_model_dict(p, _load_file(p, "voice model"))
    standin = pop_standin_marker(obj)
    raw = dict(obj["weight"])
    standin = pop_standin_marker(raw) or standin
    weight = {k: v for k, v in canonical_state_dict(raw).items() if not k.startswith("enc_q.")}
    if not _is_state_dict(weight) or "emb_g.weight" not in weight or "enc_p.emb_phone.weight" not in weight:
        raise UserInputError(f"{p.name}: 'weight' is not an RVC generator state dict")
    config, sr = _voice_model_config(p, obj["config"], weight)
    version, use_f0 = _voice_model_variant(p, obj, weight)
    info = str(obj.get("info") or "")
    epoch = obj.get("epoch")
    if epoch is None and info.endswith("epoch") and info[: -len("epoch")].isdigit():
        epoch = int(info[: -len("epoch")])
    known = {"weight", "config", "info", "sr", "f0", "version", "epoch", "step", "model_name", "vocoder"}
    sm = SmallModel(
        path=p,
        weight=weight,
        config=config,
        sr=sr,
        sample_rate={v: k for k, v in SAMPLE_RATES.items()}[sr],
        version=version,
        use_f0=use_f0,
        info=info,
        name=obj.get("model_name") or p.stem,
        epoch=int(epoch) if epoch is not None else None,
        step=int(obj["step"]) if obj.get("step") is not None else None,
        vocoder=str(obj.get("vocoder") or SUPPORTED_VOCODER),
        extras={k: v for k, v in obj.items() if k not in known},
        standin=standin,
    )
    if standin is not None:
        warn_standin(f"voice model {p.name}", standin)
    return sm


def _voice_model_dict(p: Path, obj: Any) -> dict[str, Any]:
    """A loaded file as a voice model's top-level dict; refuses other files and other vocoders."""
    if not isinstance(obj, Mapping) or "weight" not in obj or "config" not in obj:
        if isinstance(obj, Mapping) and "model" in obj:
            raise UserInputError(
                f"{p.name} is a training checkpoint or pretrained file (it has 'model'), not an exported voice "
                "model: use the small <name>.pth written at the end of training"
            )
        raise UserInputError(f"{p.name} is not an RVC voice model (expected the keys 'weight' and 'config')")
    vocoder = str(obj.get("vocoder") or SUPPORTED_VOCODER)
    if vocoder != SUPPORTED_VOCODER:
        raise UserInputError(
            f"{p.name} uses the {vocoder!r} vocoder (an Applio option); only standard RVC models with the "
            f"{SUPPORTED_VOCODER} decoder are supported: retrain or export it with HiFi-GAN"
        )
    return dict(obj)


def _voice_model_config(p: Path, stored: Any, weight: Mapping[str, torch.Tensor]) -> tuple[list[Any], int]:
    """(the 18-item config with `spk_embed_dim` from the weights, the sample rate in Hz)."""
    config = list(stored)
    if len(config) != len(SMALL_MODEL_CONFIG):
        raise UserInputError(
            f"{p.name}: 'config' has {len(config)} items, an RVC voice model has {len(SMALL_MODEL_CONFIG)}"
        )
    try:
        sr = _SLOT["sampling_rate"].read(config)
    except (TypeError, ValueError):
        raise UserInputError(f"{p.name}: config[{_RATE}] (sample rate) is {config[_RATE]!r}, not a number") from None
    if sr not in SAMPLE_RATES.values():
        raise UserInputError(f"{p.name} is a {sr} Hz model; supported sample rates are {sorted(SAMPLE_RATES.values())}")
    config[_SPEAKERS] = int(weight["emb_g.weight"].shape[0])
    return config, sr


def _voice_model_variant(p: Path, obj: Mapping[str, Any], weight: Mapping[str, torch.Tensor]) -> tuple[str, bool]:
    """(version, pitch guidance) as the weights' shapes tell (a warning when the file declares others)."""
    found = identify_generator(weight)
    if found.version is None:
        raise UserInputError(
            f"{p.name}: content features are {weight['enc_p.emb_phone.weight'].shape[1]}-dim; "
            "RVC v1 models take 256, v2 models 768"
        )
    declared_version = str(obj.get("version") or "v1")
    declared_f0 = bool(int(obj.get("f0", 1)))
    if declared_version != found.version or declared_f0 != found.use_f0:
        _log.warning(
            "%s declares version %s, f0 %s but its weights are %s: using the weights' variant",
            p.name,
            declared_version,
            int(declared_f0),
            found.describe(),
        )
    if found.version not in VERSIONS:
        raise UserInputError(f"{p.name}: unsupported version {found.version}")
    return found.version, found.use_f0


def build_generator_from_small_model(sm: SmallModel, device: torch.device | str = "cpu") -> Synthesizer:
    """The synthesizer of a voice model, weights loaded (float32), weight norm folded, in eval mode.

    The posterior encoder (`enc_q`, training only) is removed; use `.infer(...)`.
    """
    cfg = sm.to_config()
    with torch.device("meta"):
        expected = {
            k: v for k, v in _state_shapes(build_generator(cfg, sm.use_f0)).items() if not k.startswith("enc_q.")
        }
    _check_shapes(
        expected,
        sm.weight,
        f"voice model {sm.path.name}",
        "The file's weights do not match its own config: it is damaged or from an unsupported fork.",
    )
    net = build_generator(cfg, sm.use_f0)
    del net.enc_q
    net.load_state_dict(sm.weight, strict=True)
    net.remove_weight_norm()
    return net.float().eval().to(device)
