"""Reading a `resume_from` zip as untrusted input: its train state, checked, and its checkpoints.

A model zip written with `include_checkpoints` holds `checkpoints/G_<step>.pth`,
`checkpoints/D_<step>.pth`, `checkpoints/train_state.json` and the best-epoch model
`<name>_best_e<N>.pth` beside the other files of the zip (which resuming never reads).

Everything in it is hostile until checked:

- a member name that is absolute, holds `..` or a backslash, or a file in `checkpoints/` other than the
  three expected ones, refuses the whole zip;
- `train_state.json` is read only when its declared size is at most `STATE_MAX_BYTES`, and at most that
  many bytes are read whatever the header says; it must be a JSON object whose every key has the
  expected type; unknown keys are dropped;
- every file the state names (`checkpoint_g`, `checkpoint_d`, `best_model_path`) must be a plain file
  name of the expected form that is a member of the zip; the state returned holds only those plain
  names, so every path is derived from the job's own folder;
- checkpoints are copied only up to the size a checkpoint of this network can have (`max_bytes`).

Every problem is a `UserInputError` that says what is wrong; `read_resume_state` touches no file
outside the zip and is cheap, so it runs before any download.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from infer.lib.errors import UserInputError
from infer.lib.fileio import copy_capped

CKPT_DIR = "checkpoints"
STATE_NAME = "train_state.json"
STATE_MEMBER = f"{CKPT_DIR}/{STATE_NAME}"
STATE_MAX_BYTES = 1 << 20
MAX_MEMBERS = 10_000  # a model zip holds a few dozen (TensorBoard files included)
MiB = 1 << 20
G_RE = re.compile(r"^G_[0-9]{1,12}\.pth$")
D_RE = re.compile(r"^D_[0-9]{1,12}\.pth$")
BEST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}_best_e[0-9]{1,9}\.pth$")
_SCHED_KEYS = {
    "gamma": "number",
    "base_lrs": "numbers",
    "last_epoch": "int",
    "_step_count": "int",
    "_is_initial": "bool",
    "_get_lr_called_within_step": "bool",
    "_last_lr": "numbers",
    "verbose": "bool",
}
_SCALER_KEYS = {
    "scale": "number",
    "growth_factor": "number",
    "backoff_factor": "number",
    "growth_interval": "int",
    "_growth_tracker": "int",
}


@dataclass(frozen=True)
class SizeCaps:
    """Largest accepted size in bytes of each member kind (uncompressed)."""

    state: int = STATE_MAX_BYTES
    checkpoint_g: int = 2048 * MiB
    checkpoint_d: int = 2048 * MiB
    best_model: int = 1024 * MiB


def _bad(zip_name: str, what: str) -> UserInputError:
    return UserInputError(
        f"resume_from: {zip_name} {what}; give a zip this trainer returned with include_checkpoints=true"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _check_kind(v: Any, kind: str) -> bool:
    if kind == "int":
        return _is_int(v)
    if kind == "number":
        return _is_num(v)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "numbers":
        return isinstance(v, list) and len(v) <= 64 and all(_is_num(x) for x in v)
    raise AssertionError(kind)


def _typed_dict(d: Any, keys: dict[str, str], what: str, zip_name: str, required: tuple[str, ...]) -> dict[str, Any]:
    """`d` filtered to `keys`, each value of its kind; UserInputError when malformed."""
    if not isinstance(d, Mapping):
        raise _bad(zip_name, f"has a train state whose {what} is not an object")
    out = {}
    for k, kind in keys.items():
        if k not in d:
            continue
        if not _check_kind(d[k], kind):
            raise _bad(zip_name, f"has a train state whose {what}.{k} is not a valid {kind}")
        out[k] = d[k]
    missing = [k for k in required if k not in out]
    if missing:
        raise _bad(zip_name, f"has a train state whose {what} lacks {', '.join(missing)}")
    return out


def _check_names(names: list[str], zip_name: str) -> None:
    for n in names:
        p = PurePosixPath(n)
        if n.startswith("/") or "\\" in n or ".." in p.parts or (len(n) > 1 and n[1] == ":") or "\x00" in n:
            raise _bad(zip_name, f"holds a member with an unsafe name ({n[:80]!r})")
        if p.parts and p.parts[0] == CKPT_DIR and not n.endswith("/"):
            rest = n[len(CKPT_DIR) + 1 :]
            if not (rest == STATE_NAME or G_RE.match(rest) or D_RE.match(rest)):
                raise _bad(zip_name, f"holds an unexpected file in {CKPT_DIR}/ ({n[:80]!r})")


def _counters_and_flags(raw: dict[str, Any], zip_name: str) -> dict[str, Any]:
    """Step counters, version, sample rate, true/false flags and name of a train state, checked."""
    from infer.lib.config import SAMPLE_RATES, VERSIONS

    st: dict[str, Any] = {}
    for k in ("epoch", "step", "skipped_steps"):
        v = raw.get(k, 0)
        if not _is_int(v) or not 0 <= v < 10**12:
            raise _bad(zip_name, f"has a train state whose {k} is not a whole number >= 0")
        st[k] = v
    version, sample_rate = raw["version"], raw["sample_rate"]
    if not (
        isinstance(version, str)
        and version in VERSIONS
        and isinstance(sample_rate, str)
        and sample_rate in SAMPLE_RATES
    ):
        raise _bad(zip_name, "has a train state with an unknown version or sample_rate")
    st["version"], st["sample_rate"] = raw["version"], raw["sample_rate"]
    for k in ("use_f0", "standin_weights", "from_scratch"):
        v = raw.get(k, False)
        if not isinstance(v, bool):
            raise _bad(zip_name, f"has a train state whose {k} is not true/false")
        st[k] = v
    name = raw.get("name")
    if name is not None and not (isinstance(name, str) and len(name) <= 64):
        raise _bad(zip_name, "has a train state whose name is not a short text")
    st["name"] = name
    return st


def _named_files(raw: dict[str, Any], members: Mapping[str, zipfile.ZipInfo], zip_name: str) -> dict[str, Any]:
    """The checkpoint pair and best-epoch model a train state names: plain names of members of the zip."""
    st: dict[str, Any] = {}
    for k, rx in (("checkpoint_g", G_RE), ("checkpoint_d", D_RE)):
        v = raw[k]
        if not isinstance(v, str) or not rx.match(v):
            raise _bad(zip_name, f"has a train state whose {k} is not a plain checkpoint file name")
        if f"{CKPT_DIR}/{v}" not in members:
            raise _bad(zip_name, f"lacks {CKPT_DIR}/{v}, which its train state names")
        st[k] = v
    best = raw.get("best_model_path")
    if best is not None:
        if not isinstance(best, str) or not BEST_RE.match(best):
            raise _bad(zip_name, "has a train state whose best_model_path is not a plain model file name")
        if best not in members:
            raise _bad(zip_name, f"lacks {best}, which its train state names")
    st["best_model_path"] = best
    return st


def _holdout_scores(raw: dict[str, Any], zip_name: str) -> dict[str, Any]:
    """best_epoch with best_holdout_mel (both or neither) and initial_holdout_mel, checked."""
    be, bm = raw.get("best_epoch"), raw.get("best_holdout_mel")
    if (be is None) != (bm is None) or (be is not None and not (_is_int(be) and be >= 0 and _is_num(bm))):
        raise _bad(zip_name, "has a train state whose best_epoch/best_holdout_mel are not a number pair")
    ih = raw.get("initial_holdout_mel")
    if ih is not None and not _is_num(ih):
        raise _bad(zip_name, "has a train state whose initial_holdout_mel is not a number")
    return {"best_epoch": be, "best_holdout_mel": bm, "initial_holdout_mel": ih}


def _optimiser_states(raw: dict[str, Any], zip_name: str) -> dict[str, Any]:
    """Both learning-rate schedulers and the optional gradient scaler, filtered to their typed keys."""
    req = ("base_lrs", "last_epoch")
    sc = raw.get("scaler")
    return {
        "scheduler_g": _typed_dict(raw.get("scheduler_g"), _SCHED_KEYS, "scheduler_g", zip_name, req),
        "scheduler_d": _typed_dict(raw.get("scheduler_d"), _SCHED_KEYS, "scheduler_d", zip_name, req),
        "scaler": None if sc is None else _typed_dict(sc, _SCALER_KEYS, "scaler", zip_name, tuple(_SCALER_KEYS)),
    }


def _clean_history(hist: Any, zip_name: str) -> list[dict[str, Any]]:
    """The per-epoch history: a list of objects, each with an epoch number and numeric (or null) values."""
    if not isinstance(hist, list):
        raise _bad(zip_name, "has a train state whose history is not a list")
    clean = []
    for h in hist:
        if not isinstance(h, dict) or not _is_int(h.get("epoch")):
            raise _bad(zip_name, "has a train state whose history holds an entry without an epoch number")
        if not all(isinstance(k, str) and len(k) <= 64 and (v is None or _is_num(v)) for k, v in h.items()):
            raise _bad(zip_name, "has a train state whose history holds a value that is not a number")
        clean.append(dict(h))
    return clean


def validate_state(raw: Any, members: Mapping[str, zipfile.ZipInfo], zip_name: str) -> dict[str, Any]:
    """The checked train state (plain names only, unknown keys dropped); UserInputError when malformed."""
    if not isinstance(raw, dict):
        raise _bad(zip_name, f"has a {STATE_NAME} that is not a JSON object")
    need = ("epoch", "step", "checkpoint_g", "checkpoint_d", "version", "sample_rate", "use_f0")
    missing = [k for k in need if k not in raw]
    if missing:
        raise _bad(zip_name, f"has a {STATE_NAME} without {', '.join(missing)}")
    st = _counters_and_flags(raw, zip_name)
    st.update(_named_files(raw, members, zip_name))
    st.update(_holdout_scores(raw, zip_name))
    st.update(_optimiser_states(raw, zip_name))
    st["history"] = _clean_history(raw.get("history", []), zip_name)
    return st


def read_resume_state(zip_path: str | Path, caps: SizeCaps | None = None) -> dict[str, Any]:
    """The checked train state of a `resume_from` zip (see the module docstring); UserInputError otherwise."""
    caps = caps or SizeCaps()
    zip_name = Path(zip_path).name
    try:
        with zipfile.ZipFile(zip_path) as z:
            infos = z.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _bad(zip_name, f"holds {len(infos)} files, more than a model zip ever does ({MAX_MEMBERS})")
            _check_names([i.filename for i in infos], zip_name)
            members = {i.filename: i for i in infos}
            si = members.get(STATE_MEMBER)
            if si is None:
                raise UserInputError(
                    f"resume_from: {zip_name} holds no checkpoints; train with include_checkpoints=true "
                    "to get a zip that can be continued"
                )
            if si.file_size > caps.state:
                raise _bad(zip_name, f"has a {STATE_NAME} larger than {caps.state // 1024} KiB")
            with z.open(si) as f:
                data = f.read(caps.state + 1)
            if len(data) > caps.state:
                raise _bad(zip_name, f"has a {STATE_NAME} larger than {caps.state // 1024} KiB")
            try:
                raw = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise _bad(zip_name, f"has a {STATE_NAME} that is not valid JSON") from None
            st = validate_state(raw, members, zip_name)
            for key, cap in (("checkpoint_g", caps.checkpoint_g), ("checkpoint_d", caps.checkpoint_d)):
                size = members[f"{CKPT_DIR}/{st[key]}"].file_size
                if size > cap:
                    raise _bad(
                        zip_name, f"has a {st[key]} of {size / MiB:.0f} MiB, more than this model's {cap / MiB:.0f} MiB"
                    )
            if st["best_model_path"] and members[st["best_model_path"]].file_size > caps.best_model:
                raise _bad(zip_name, f"has a {st['best_model_path']} larger than this model can be")
            return st
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise UserInputError(f"resume_from: {zip_name} is not a readable zip file") from None
    except (NotImplementedError, RuntimeError) as e:  # unknown compression, encrypted members
        raise UserInputError(f"resume_from: {zip_name} cannot be read ({e})") from None


def _copy_capped(z: zipfile.ZipFile, member: str, dst: Path, cap: int, zip_name: str) -> None:
    """Copy one member to `dst` atomically, refusing it when more than `cap` bytes come out."""
    with z.open(member) as src:
        if not copy_capped(src, dst, cap):
            raise _bad(zip_name, f"has a {member} larger than this model can be")


def unpack_resume(zip_path: str | Path, folder: Path, caps: SizeCaps | None = None) -> dict[str, Any]:
    """Check the zip, copy its checkpoint pair and best-epoch model into `folder` (under the plain
    names of the checked state) and return the checked state; nothing else is written."""
    caps = caps or SizeCaps()
    st = read_resume_state(zip_path, caps)
    zip_name = Path(zip_path).name
    try:
        with zipfile.ZipFile(zip_path) as z:
            _copy_capped(
                z, f"{CKPT_DIR}/{st['checkpoint_g']}", folder / st["checkpoint_g"], caps.checkpoint_g, zip_name
            )
            _copy_capped(
                z, f"{CKPT_DIR}/{st['checkpoint_d']}", folder / st["checkpoint_d"], caps.checkpoint_d, zip_name
            )
            if st["best_model_path"]:
                best = st["best_model_path"]
                _copy_capped(z, best, folder / best, caps.best_model, zip_name)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        raise UserInputError(f"resume_from: {zip_name} cannot be read ({e})") from None
    return st


def checkpoint_caps(cfg: Any, use_f0: bool) -> SizeCaps:
    """Size caps from this network's parameter counts: a checkpoint holds fp32 weights and two AdamW
    moments (3 x 4 bytes a parameter) plus a little; the small model at most 4 bytes a parameter."""
    import torch

    from infer.lib.models.discriminator import build_discriminator
    from infer.lib.models.synthesizer import build_generator

    with torch.device("meta"):
        ng = sum(p.numel() for p in build_generator(cfg, use_f0).parameters())
        nd = sum(p.numel() for p in build_discriminator(cfg.version).parameters())

    def cap(n: int, per: int) -> int:
        return int(n * per * 1.05) + 8 * MiB

    return SizeCaps(checkpoint_g=cap(ng, 12), checkpoint_d=cap(nd, 12), best_model=cap(ng, 4))
