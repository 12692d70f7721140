"""Stand-in weight files: the published on-disk formats, deterministic values, the stand-in marker.

One writer per format, each building its network on the meta device (or, for MossFormer2, from
clearvoice's class) so the shapes are exactly those the loaders check:
- `write_standin_pretrained`: pretrained G/D `{"model": fp16 state dict}` (infer.lib.checkpoint);
- `write_standin_hubert`: fairseq's `hubert_base.pt` (infer.lib.hubert), full size or tiny;
- `write_standin_mossformer2`: ClearerVoice's MossFormer2_SE_48K folder (infer.lib.enhance).
The loaders only detect the marker (`infer.lib.standin`) and warn loudly. `tools.make_standin_weights`
writes a whole weights folder with these; tests and benchmarks call them directly.
"""

from __future__ import annotations

import math
import os
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from infer.lib.config import load_config
from infer.lib.enhance import CHECKPOINT_FILE, MODEL_NAME, POINTER_FILE, build_mossformer2_se_48k
from infer.lib.fairseq_ckpt import InertObject, inert_class, save_fairseq_checkpoint
from infer.lib.fileio import atomic_torch_save, atomic_write_text
from infer.lib.hubert import DICTIONARY_CLASS, SAMPLE_RATE, HubertConfig, HubertModel, parse_conv_layers
from infer.lib.models.discriminator import build_discriminator
from infer.lib.models.synthesizer import build_generator
from infer.lib.rmvpe import RMVPENet
from infer.lib.standin import STANDIN_KEY, write_sidecar

PathLike = str | os.PathLike[str]
#: 1-d tensors with these leaf names (and every `weight*`) are scales: values near 1.
_UNIT_LEAVES = ("gamma", "g", "scale")


def deterministic_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 values seeded by crc32(`key`), with z ~ N(0, 1): tensors of 2+ dims z / sqrt(fan_in),
    1-d scales (`weight*`, `gamma`, `g`, `scale`) 1 + 0.1 z, other 1-d tensors (biases) 0.01 z."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    leaf = key.rsplit(".", 1)[-1]
    if len(shape) >= 2:
        arr = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(float(np.prod(shape[1:])))
    elif leaf.startswith("weight") or leaf in _UNIT_LEAVES:
        arr = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    else:
        arr = 0.01 * rng.standard_normal(shape, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


# ---------------------------------------------------------------------------------- pretrained G/D
def write_standin_pretrained(path: PathLike, version: str, sample_rate: str, use_f0: bool, kind: str) -> Path:
    """Write a stand-in pretrained G or D file in the published layout (`{"model": fp16 state dict}`).

    Values are deterministic (seeded by each key) and the file carries the stand-in marker, so every
    loader warns loudly. For D, `sample_rate` and `use_f0` only go into the description.
    """
    if kind not in ("G", "D"):
        raise ValueError(f"kind must be 'G' or 'D', got {kind!r}")
    with torch.device("meta"):
        net: nn.Module = (
            build_generator(load_config(version, sample_rate), use_f0) if kind == "G" else build_discriminator(version)
        )
    sd: dict[str, torch.Tensor] = OrderedDict()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for key, shape in shapes.items():
        if key.endswith(".weight_g"):
            v = deterministic_tensor(key[: -len("_g")] + "_v", shapes[key[: -len("_g")] + "_v"])
            t = v.flatten(1).norm(dim=1).reshape(shape)
        else:
            t = deterministic_tensor(key, shape)
        sd[key] = t.to(torch.float16)
    desc = (
        f"stand-in {'f0' if use_f0 and kind == 'G' else ''}{kind}{sample_rate} {version} (deterministic random values)"
    )
    p = Path(path)
    atomic_torch_save({"model": sd, STANDIN_KEY: desc}, p)
    return p


# ------------------------------------------------------------------------------------------- HuBERT
HUBERT_SIZES: dict[str, HubertConfig] = {
    "base": HubertConfig(),
    "tiny": HubertConfig(
        conv_layers=parse_conv_layers("[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"),
        embed_dim=32,
        ffn_dim=64,
        heads=2,
        conv_pos=16,
        conv_pos_groups=4,
        final_dim=16,
        num_classes=504,
    ),
}


def _fairseq_cfg(cfg: HubertConfig) -> dict[str, Any]:
    conv = " + ".join(f"[({d},{k},{s})]" for d, k, s in cfg.conv_layers)
    model = {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": cfg.extractor_mode,
        "encoder_layers": cfg.layers,
        "encoder_embed_dim": cfg.embed_dim,
        "encoder_ffn_embed_dim": cfg.ffn_dim,
        "encoder_attention_heads": cfg.heads,
        "activation_fn": "gelu",
        "layer_type": "transformer",
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05,
        "dropout_input": 0.1,
        "dropout_features": 0.1,
        "final_dim": cfg.final_dim,
        "untie_final_proj": False,
        "layer_norm_first": cfg.layer_norm_first,
        "conv_feature_layers": conv,
        "conv_bias": cfg.conv_bias,
        "logit_temp": 0.1,
        "target_glu": False,
        "feature_grad_mult": 0.1,
        "mask_length": 10,
        "mask_prob": 0.8,
        "mask_selection": "static",
        "mask_other": 0.0,
        "no_mask_overlap": False,
        "mask_min_space": 1,
        "mask_channel_length": 10,
        "mask_channel_prob": 0.0,
        "mask_channel_selection": "static",
        "mask_channel_other": 0.0,
        "no_mask_channel_overlap": False,
        "mask_channel_min_space": 1,
        "conv_pos": cfg.conv_pos,
        "conv_pos_groups": cfg.conv_pos_groups,
        "latent_temp": [2.0, 0.5, 0.999995],
        "skip_masked": False,
        "skip_nomask": False,
        "checkpoint_activations": False,
        "required_seq_len_multiple": 2,
    }
    task = {
        "_name": "hubert_pretraining",
        "data": "/nonexistent",
        "fine_tuning": False,
        "labels": ["km"],
        "label_dir": None,
        "label_rate": 50.0,
        "sample_rate": SAMPLE_RATE,
        "normalize": cfg.normalize,
        "enable_padding": False,
        "max_keep_size": None,
        "max_sample_size": 250000,
        "min_sample_size": 32000,
        "single_target": False,
        "random_crop": True,
        "pad_audio": False,
    }
    return {
        "_name": None,
        "common": {"_name": None, "fp16": True, "seed": 1337, "log_interval": 200},
        "model": model,
        "task": task,
        "criterion": {"_name": "hubert", "pred_masked_weight": 1.0, "pred_nomask_weight": 0.0},
        "optimizer": {"_name": "adam", "adam_betas": "(0.9,0.98)", "adam_eps": 1e-06, "weight_decay": 0.01},
        "lr_scheduler": {"_name": "polynomial_decay", "warmup_updates": 32000},
    }


def _dictionary(n_symbols: int) -> InertObject:
    """An object that pickles as a `fairseq.data.dictionary.Dictionary` with `n_symbols` (4 special + units)."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    symbols = specials + [str(i) for i in range(max(n_symbols - len(specials), 0))]
    d = inert_class(DICTIONARY_CLASS)()
    d.__setstate__(
        {
            "bos_word": "<s>",
            "unk_word": "<unk>",
            "pad_word": "<pad>",
            "eos_word": "</s>",
            "symbols": symbols,
            "count": [1] * len(specials) + [0] * (len(symbols) - len(specials)),
            "indices": {s: i for i, s in enumerate(symbols)},
            "bos_index": 0,
            "pad_index": 1,
            "eos_index": 2,
            "unk_index": 3,
            "nspecial": len(specials),
        }
    )
    return d


def write_standin_hubert(path: str | os.PathLike[str], size: str = "base") -> Path:
    """Write a stand-in `hubert_base.pt` in fairseq's on-disk format (deterministic fp16 weights, marked).

    `size`: "base" (the published architecture: 12 layers, width 768, final_proj 256, 504 classes)
    or "tiny" (12 layers, width 32) for fast tests. The file loads with `load_hubert` like the real one.
    """
    if size not in HUBERT_SIZES:
        raise ValueError(f"size must be one of {sorted(HUBERT_SIZES)}, got {size!r}")
    cfg = HUBERT_SIZES[size]
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in HubertModel(cfg).state_dict().items()}
    state = {
        k: torch.ones(shape, dtype=torch.float16) if k.endswith(".weight_g") else deterministic_tensor(k, shape).half()
        for k, shape in shapes.items()
    }
    ckpt = {
        "cfg": _fairseq_cfg(cfg),
        "model": state,
        "task_state": {"dictionaries": [_dictionary(cfg.num_classes)]},
        "args": None,
        "optimizer_history": [
            {"criterion_name": "hubert", "optimizer_name": "adam", "lr_scheduler_state": {"best": None}}
        ],
        "extra_state": {"epoch": 1},
        "last_optimizer_state": None,
        STANDIN_KEY: f"stand-in HuBERT {size} (deterministic values, not the published weights)",
    }
    path = Path(path)
    save_fairseq_checkpoint(ckpt, path)
    return path


# ------------------------------------------------------------------------------------- MossFormer2
def write_standin_mossformer2(checkpoint_dir: str | os.PathLike[str]) -> Path:
    """Write a stand-in MossFormer2_SE_48K checkpoint folder (real layout, deterministic values, marker).

    `checkpoint_dir` is the folder itself (e.g. `mossformer2_dir(weights_dir)`). Parameters get
    deterministic values from (key, shape) (a tensor shared by several keys gets the first key's values
    under all of them, as `torch.save` of the real network stores it); buffers and frozen parameters
    (positional and rotary tables) keep the network's own computed values. Returns the `.pt` path.
    """
    checkpoint_dir = Path(checkpoint_dir)
    model = build_mossformer2_se_48k()
    state: dict[str, torch.Tensor] = {}
    made: dict[int, torch.Tensor] = {}  # shared tensors (the rotary tables of all layers) stay shared
    for k, v in model.state_dict(keep_vars=True).items():
        if id(v) not in made:
            trained = isinstance(v, torch.nn.Parameter) and v.requires_grad
            made[id(v)] = deterministic_tensor(k, tuple(v.shape)) if trained else v.detach().clone()
        state[k] = made[id(v)]
    path = checkpoint_dir / CHECKPOINT_FILE
    atomic_torch_save(
        {"model": state, "epoch": 0, "step": 0, STANDIN_KEY: f"{MODEL_NAME} stand-in (deterministic, untrained)"},
        path,
    )
    atomic_write_text(checkpoint_dir / POINTER_FILE, CHECKPOINT_FILE + "\n")
    return path


def write_standin_rmvpe(path: str | Path) -> Path:
    """Write a stand-in `rmvpe.pt`: exactly the published bare-state-dict layout, deterministic values.

    Values are small deterministic noise (full size, 90M parameters, so speed tests are realistic).
    The stand-in marker is the sidecar `rmvpe.pt.standin` (nothing extra in the file, so strict
    loaders, the reference's included, accept it).
    """
    gen = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}
    for k, v in RMVPENet().state_dict().items():
        leaf = k.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            sd[k] = torch.zeros((), dtype=torch.long)
        elif leaf == "running_var":
            sd[k] = torch.ones_like(v)
        elif leaf == "running_mean":
            sd[k] = torch.zeros_like(v)
        elif v.dim() >= 2:
            fan_in = max(1, v[0].numel())
            sd[k] = torch.randn(v.shape, generator=gen) / math.sqrt(fan_in)
        elif leaf.startswith("weight"):
            sd[k] = 1.0 + 0.1 * torch.randn(v.shape, generator=gen)
        else:
            sd[k] = 0.01 * torch.randn(v.shape, generator=gen)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sidecar(path, "RMVPE stand-in (deterministic random weights)")
    atomic_torch_save(sd, path)
    return path
