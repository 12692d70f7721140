"""HuBERT content features, computed by our own network from fairseq's `hubert_base.pt`.

The network is the HuBERT/wav2vec 2.0 encoder (Hsu et al. 2021, Baevski et al. 2020) as fairseq lays it
out, so the published checkpoint loads with strict key and shape checks and gives fairseq's numbers:

    wav [B, T] 16 kHz
      -> feature_extractor: 7 Conv1d (no bias; layer 0 followed by a per-channel GroupNorm), GELU
         [B, 512, frames], frames ~= T / 320 (50 per second)
      -> layer_norm over channels -> post_extract_proj (512 -> 768)
      -> encoder: x + GELU(SamePad(weight-normed grouped Conv1d pos_conv(x))), layer_norm (post-LN models),
         N transformer layers (self-attention, FFN; post-LN when `layer_norm_first` is False)
    v1 features: output of layer 9, then final_proj (768 -> 256) -> [B, frames, 256]
    v2 features: output of layer 12                              -> [B, frames, 768]

The layers (float32 norms, weight-normed positional convolution, self-attention) are in
`infer.lib.hubert_layers`. Nothing here imports fairseq; the checkpoint is read by
`infer.lib.fairseq_ckpt` (no pickled code runs).
`tools.standin_writers.write_standin_hubert` writes a stand-in file in the same on-disk format.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.errors import WeightsError
from infer.lib.fairseq_ckpt import InertObject, load_fairseq_checkpoint
from infer.lib.hubert_layers import (
    Fp32GroupNorm,
    Fp32LayerNorm,
    SamePad,
    SelfAttention,
    TransposeLast,
    WeightNormConv1d,
    masked_channel_norm,
)
from infer.lib.log import get_logger
from infer.lib.standin import pop_standin_marker, warn_standin

_log = get_logger("hubert")

DICTIONARY_CLASS = "fairseq.data.dictionary.Dictionary"
OUTPUT_LAYERS = {"v1": 9, "v2": 12}
SAMPLE_RATE = 16000
BASE_CONV_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"


def parse_conv_layers(spec: str) -> tuple[tuple[int, int, int], ...]:
    """Evaluate fairseq's `conv_feature_layers` string (lists of (dim, kernel, stride), `+`, `*`) safely."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(f"unsupported element {ast.dump(node)}")

    try:
        layers = ev(ast.parse(spec, mode="eval"))
        out = tuple((int(d), int(k), int(s)) for d, k, s in layers)
    except (SyntaxError, ValueError, TypeError) as e:
        raise WeightsError(f"cannot read conv_feature_layers {spec!r}: {e}") from e
    if not out:
        raise WeightsError(f"conv_feature_layers {spec!r} is empty")
    return out


@dataclass(frozen=True)
class HubertConfig:
    """The architecture, read from a checkpoint's `cfg["model"]` (+ `cfg["task"]["normalize"]`)."""

    conv_layers: tuple[tuple[int, int, int], ...] = parse_conv_layers(BASE_CONV_LAYERS)
    extractor_mode: str = "default"  # "default": GroupNorm after conv 0; "layer_norm": LayerNorm after each
    conv_bias: bool = False
    # the transformer
    embed_dim: int = 768
    layers: int = 12
    heads: int = 12
    ffn_dim: int = 3072
    layer_norm_first: bool = False
    # its positional convolution
    conv_pos: int = 128
    conv_pos_groups: int = 16
    # the outputs
    final_dim: int = 256  # resolved: fairseq's final_dim <= 0 means embed_dim
    num_classes: int = 504  # rows of label_embs_concat (sum of the dictionaries' sizes); 0: none
    normalize: bool = False  # task.normalize: layer-norm each waveform before the network

    def __post_init__(self) -> None:
        if self.extractor_mode not in ("default", "layer_norm"):
            raise WeightsError(f"unsupported HuBERT extractor_mode {self.extractor_mode!r}")
        if self.embed_dim % self.heads:
            raise WeightsError(f"encoder_embed_dim {self.embed_dim} is not divisible by {self.heads} heads")
        if min(self.embed_dim, self.ffn_dim, self.heads, self.layers, self.conv_pos, self.final_dim) <= 0:
            raise WeightsError(f"invalid HuBERT config {self}")

    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @classmethod
    def from_fairseq(cls, model_cfg: dict[str, Any], task_cfg: dict[str, Any], num_classes: int) -> HubertConfig:
        """From fairseq's `cfg["model"]` and `cfg["task"]` dicts (missing keys take fairseq's defaults)."""
        g = model_cfg.get
        for key, ok in (("layer_type", "transformer"), ("pos_enc_type", "abs")):
            if g(key, ok) != ok:
                raise WeightsError(f"unsupported HuBERT {key} {g(key)!r} (only {ok!r})")
        if g("conv_pos_batch_norm", False) or int(g("pos_conv_depth", 1) or 1) != 1:
            raise WeightsError("unsupported HuBERT positional convolution (batch norm or depth > 1)")
        if g("untie_final_proj", False):
            raise WeightsError("unsupported HuBERT untie_final_proj=True")
        embed = int(g("encoder_embed_dim", 768))
        final_dim = int(g("final_dim", 0) or 0)
        return cls(
            conv_layers=parse_conv_layers(str(g("conv_feature_layers", BASE_CONV_LAYERS))),
            extractor_mode=str(g("extractor_mode", "default")),
            conv_bias=bool(g("conv_bias", False)),
            embed_dim=embed,
            ffn_dim=int(g("encoder_ffn_embed_dim", 3072)),
            heads=int(g("encoder_attention_heads", 12)),
            layers=int(g("encoder_layers", 12)),
            conv_pos=int(g("conv_pos", 128)),
            conv_pos_groups=int(g("conv_pos_groups", 16)),
            layer_norm_first=bool(g("layer_norm_first", False)),
            final_dim=final_dim if final_dim > 0 else embed,
            num_classes=num_classes,
            normalize=bool(task_cfg.get("normalize", False)),
        )


# ----------------------------------------------------------------------------------------------------
# The network


class FeatureExtractor(nn.Module):
    """The convolutional waveform encoder: [B, T] -> [B, conv_dim, frames]."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList()
        in_dim = 1
        for i, (dim, k, stride) in enumerate(cfg.conv_layers):
            conv = nn.Conv1d(in_dim, dim, k, stride=stride, bias=cfg.conv_bias)
            if cfg.extractor_mode == "layer_norm":
                norm = nn.Sequential(TransposeLast(), Fp32LayerNorm(dim), TransposeLast())  # keys ...2.1.*
                block = nn.Sequential(conv, nn.Dropout(0.0), norm, nn.GELU())
            elif i == 0:
                block = nn.Sequential(conv, nn.Dropout(0.0), Fp32GroupNorm(dim, dim, affine=True), nn.GELU())
            else:
                block = nn.Sequential(conv, nn.Dropout(0.0), nn.GELU())
            self.conv_layers.append(block)
            in_dim = dim
        self.specs = cfg.conv_layers

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] -> [B, conv_dim, frames]. With `lengths` [B] (valid samples per row), the GroupNorm of
        layer 0 takes each row's statistics over its valid frames only, so every row's valid output
        frames equal those of the row run alone; frames past a row's `num_frames(length)` are garbage.

        On the CPU, rows without `lengths` run one at a time (the same numbers): the first layers' outputs
        are 512 channels at 3.2 kHz (24 MB for 3.7 s), and a batch of them falls out of the cache (slower
        a row than alone); the transformer after it gains from the batch.
        """
        if lengths is None and wav.device.type == "cpu" and wav.shape[0] > 1:
            return torch.cat([self(row[None]) for row in wav])
        x = wav.unsqueeze(1)
        for i, block in enumerate(self.conv_layers):
            assert isinstance(block, nn.Sequential)  # conv, dropout, (norm,) GELU
            norm = block[2] if len(block) == 4 else None
            if lengths is not None and isinstance(norm, Fp32GroupNorm):
                valid = self.num_frames_after(lengths, i + 1)
                x = block[3](masked_channel_norm(block[0](x), valid, norm))
            else:
                x = block(x)
        return x

    def num_frames_after(self, num_samples: torch.Tensor, n_layers: int) -> torch.Tensor:
        n = num_samples
        for _, k, s in self.specs[:n_layers]:
            n = torch.div(n - k, s, rounding_mode="floor") + 1
        return n

    def num_frames(self, num_samples: int | torch.Tensor) -> Any:
        """Output frames for `num_samples` input samples (0 when too short)."""
        n = num_samples
        for _, k, s in self.specs:
            n = (n - k) // s + 1
        return n if isinstance(n, torch.Tensor) else max(int(n), 0)


class EncoderLayer(nn.Module):
    """One transformer layer: attention and a GELU FFN, post-LN (or pre-LN when `layer_norm_first`)."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(cfg.embed_dim, cfg.heads)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.embed_dim)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x), key_mask)
            return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x + self.self_attn(x, key_mask))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(cfg.embed_dim, cfg.conv_pos, cfg.conv_pos_groups), SamePad(cfg.conv_pos), nn.GELU()
        )
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None, n_layers: int) -> torch.Tensor:
        """x [B, frames, C]; padding [B, frames] bool (True = padded) or None; output of layer `n_layers`."""
        key_mask = None
        if padding is not None:
            x = x.masked_fill(padding.unsqueeze(-1), 0.0)
            if bool(padding.any()):
                key_mask = (~padding)[:, None, None, :]
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        for layer in self.layers[:n_layers]:
            x = layer(x, key_mask)
        if self.layer_norm_first and n_layers == len(self.layers):
            x = self.layer_norm(x)
        return x


class HubertModel(nn.Module):
    """HuBERT with fairseq's parameter names. `extract` gives RVC's v1/v2 content features."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.standin: str | None = None  # the stand-in marker's description, None for real weights
        self.source_path: Path | None = None  # the file it was loaded from (cache keys hash it)
        self.mask_emb = nn.Parameter(torch.zeros(cfg.embed_dim))
        if cfg.num_classes > 0:
            self.label_embs_concat = nn.Parameter(torch.zeros(cfg.num_classes, cfg.final_dim))
        self.feature_extractor = FeatureExtractor(cfg)
        self.post_extract_proj = nn.Linear(cfg.conv_dim, cfg.embed_dim) if cfg.conv_dim != cfg.embed_dim else None
        self.encoder = TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.conv_dim)
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.final_proj.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.final_proj.weight.device

    def output_dim(self, version: str) -> int:
        return self.cfg.final_dim if version == "v1" else self.cfg.embed_dim

    def num_frames(self, num_samples: int) -> int:
        """Feature frames for a waveform of `num_samples` samples (about num_samples / 320)."""
        return self.feature_extractor.num_frames(num_samples)

    def forward_layers(self, wav: torch.Tensor, padding_mask: torch.Tensor | None, output_layer: int) -> torch.Tensor:
        """fairseq's `extract_features(source, padding_mask, output_layer)[0]`: [B, frames, embed_dim].

        `wav` [B, T] (already normalised if the checkpoint asks for it), `padding_mask` [B, T] bool.
        """
        if not 1 <= output_layer <= self.cfg.layers:
            raise ValueError(f"output_layer must be in 1..{self.cfg.layers}, got {output_layer}")
        feats = self.feature_extractor(wav).transpose(1, 2)  # [B, frames, conv_dim]
        feats = self.layer_norm(feats)
        frame_pad = None
        if padding_mask is not None:
            frames = feats.shape[1]
            extra = padding_mask.shape[1] % frames
            pm = padding_mask[:, : padding_mask.shape[1] - extra] if extra else padding_mask
            frame_pad = pm.reshape(pm.shape[0], frames, -1).all(-1)
        if self.post_extract_proj is not None:
            feats = self.post_extract_proj(feats)
        return self.encoder(feats, frame_pad, output_layer)

    def forward_padded(self, wav: torch.Tensor, lengths: torch.Tensor, output_layer: int) -> torch.Tensor:
        """Like `forward_layers` for rows of different lengths, padded at the end: [B, frames, embed_dim].

        Unlike fairseq's padding mask (which leaves the first conv layer's GroupNorm statistics to include
        the padding), each row's valid frames here equal those of the row run alone (to float rounding):
        the GroupNorm is masked, padded frames are zeroed before the positional convolution (whose zero
        padding they then match) and never attended to.
        """
        if not 1 <= output_layer <= self.cfg.layers:
            raise ValueError(f"output_layer must be in 1..{self.cfg.layers}, got {output_layer}")
        lengths = lengths.to(wav.device)
        feats = self.layer_norm(self.feature_extractor(wav, lengths).transpose(1, 2))
        n = self.feature_extractor.num_frames(lengths)
        frame_pad = torch.arange(feats.shape[1], device=wav.device)[None, :] >= n[:, None]
        if self.post_extract_proj is not None:
            feats = self.post_extract_proj(feats)
        return self.encoder(feats, frame_pad, output_layer)

    def extract_many(self, wavs: list[torch.Tensor], version: str = "v2") -> list[torch.Tensor]:
        """Features of several 1-D 16 kHz waveforms in one pass: a list of [frames_i, 256|768].

        Each result equals `extract(wav[None])[0]` of that waveform alone (to float rounding), whatever
        the other lengths; equal lengths need no padding at all.
        """
        if version not in OUTPUT_LAYERS:
            raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
        lengths = torch.tensor([int(w.shape[-1]) for w in wavs])
        if not wavs or self.num_frames(int(lengths.min())) < 1:
            raise ValueError("extract_many needs at least one waveform, each long enough for one frame (25 ms)")
        if int(lengths.min()) == int(lengths.max()):
            out = self.extract(torch.stack([w.reshape(-1) for w in wavs]), None, version)
            return list(out.unbind(0))
        batch = torch.zeros(len(wavs), int(lengths.max()), dtype=torch.float32)
        for i, w in enumerate(wavs):
            batch[i, : w.shape[-1]] = w.reshape(-1).float()
        batch = batch.to(self.device)
        if self.cfg.normalize:
            pad = torch.arange(batch.shape[1])[None, :] >= lengths[:, None]
            batch = _normalize_rows(batch, pad.to(self.device))
        x = self.forward_padded(batch.to(self.dtype), lengths, OUTPUT_LAYERS[version])
        if version == "v1":
            x = self.final_proj(x)
        n = self.feature_extractor.num_frames(lengths)
        return [x[i, : int(n[i])] for i in range(len(wavs))]

    def extract(
        self, wav16k: torch.Tensor, padding_mask: torch.Tensor | None = None, version: str = "v2"
    ) -> torch.Tensor:
        """RVC content features: [B, T] 16 kHz float -> [B, frames, 256 (v1) | 768 (v2)], in the model's dtype.

        v1: layer 9 then `final_proj`; v2: layer 12. `padding_mask` [B, T] bool, True on padding. Rows of a
        batch are independent only where no padding is involved: the first conv layer's GroupNorm takes
        statistics over the whole row, padding included (as fairseq): for rows of different lengths use
        `extract_many`, which masks that too.
        """
        if version not in OUTPUT_LAYERS:
            raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
        if wav16k.dim() != 2:
            raise ValueError(f"wav16k must be [B, T], got shape {tuple(wav16k.shape)}")
        wav = wav16k.to(self.device, torch.float32)
        if padding_mask is not None:
            padding_mask = padding_mask.to(self.device, torch.bool)
        if self.cfg.normalize:
            wav = _normalize_rows(wav, padding_mask)
        x = self.forward_layers(wav.to(self.dtype), padding_mask, OUTPUT_LAYERS[version])
        return self.final_proj(x) if version == "v1" else x

    def prepare_inference(self) -> HubertModel:
        """eval(), no grads, cached pos_conv weight and fused q/k/v projections.

        Call after moving to the final device and dtype (`.to()` drops the caches; `train()` too).
        """
        self.eval().requires_grad_(False)
        for m in self.modules():
            if isinstance(m, WeightNormConv1d):
                m.freeze()
            elif isinstance(m, SelfAttention):
                m.fuse()
        return self

    def train(self, mode: bool = True) -> HubertModel:
        if mode:
            for m in self.modules():
                if isinstance(m, WeightNormConv1d):
                    m.unfreeze()
                elif isinstance(m, SelfAttention):
                    m.unfuse()
        return super().train(mode)


def _normalize_rows(wav: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Layer norm of each waveform over its own samples (padding excluded), as fairseq's `normalize`."""
    if padding_mask is None:
        return F.layer_norm(wav, wav.shape[-1:])
    out = torch.zeros_like(wav)
    for i in range(wav.shape[0]):
        valid = ~padding_mask[i]
        out[i, valid] = F.layer_norm(wav[i, valid], (int(valid.sum()),))
    return out


# ----------------------------------------------------------------------------------------------------
# Loading


def _dictionary_sizes(ckpt: dict[str, Any]) -> list[int] | None:
    task_state = ckpt.get("task_state")
    if not isinstance(task_state, dict):
        return None
    sizes = []
    for d in task_state.get("dictionaries") or []:
        state = d.state if isinstance(d, InertObject) else None
        if not isinstance(state, dict) or not isinstance(state.get("symbols"), list):
            return None
        sizes.append(len(state["symbols"]))
    return sizes or None


def _cfg_sections(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    cfg = ckpt.get("cfg")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"], cfg.get("task") or {}
    args = ckpt.get("args")  # old fairseq: an argparse.Namespace (inert here) holds everything
    if isinstance(args, InertObject) and isinstance(args.state, dict):
        return args.state, args.state
    raise WeightsError("not a fairseq HuBERT checkpoint: no cfg['model'] (nor args) found")


def config_from_checkpoint(ckpt: dict[str, Any]) -> HubertConfig:
    """The `HubertConfig` of a loaded fairseq checkpoint dict (see `load_fairseq_checkpoint`)."""
    model_cfg, task_cfg = _cfg_sections(ckpt)
    name = model_cfg.get("_name", model_cfg.get("arch", "hubert"))
    if name not in (None, "hubert", "hubert_base", "hubert_large"):
        raise WeightsError(f"expected a HuBERT checkpoint, this one is a {name!r} model")
    sizes = _dictionary_sizes(ckpt)
    state = ckpt.get("model")
    if sizes is not None:
        num_classes = sum(sizes)
    elif isinstance(state, dict) and "label_embs_concat" in state:
        num_classes = int(state["label_embs_concat"].shape[0])
    else:
        num_classes = 0
    return HubertConfig.from_fairseq(model_cfg, task_cfg, num_classes)


def load_hubert(path: str | os.PathLike[str], device: str | torch.device = "cpu", half: bool = False) -> HubertModel:
    """Load `hubert_base.pt` (fairseq format) into our `HubertModel`, ready for inference on `device`.

    fp16 when `half` and `device` is CUDA, else fp32 (CPU always fp32). Strict: every key and shape of the
    file must match the network built from its own cfg. Stand-in files are accepted with a loud warning
    (`model.standin` holds their description). Raises `WeightsError` for a missing or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"HuBERT weights not found at {path} (fetch them with tools/download_weights.py)")
    ckpt = load_fairseq_checkpoint(path)
    standin = pop_standin_marker(ckpt)
    cfg = config_from_checkpoint(ckpt)
    state = ckpt.get("model")
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: no 'model' state dict in the checkpoint")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if standin is None:
        standin = pop_standin_marker(state)
    with torch.device("meta"):
        model = HubertModel(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise WeightsError(f"{path}: does not match the HuBERT network its cfg describes ({detail})")
    device = torch.device(device)
    dtype = torch.float16 if (half and device.type == "cuda") else torch.float32
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype).prepare_inference()
    if device.type == "cuda":
        from infer.lib.device import track_gpu_model

        track_gpu_model(model)  # moved aside while training runs (a long-lived worker keeps it)
    model.standin = standin
    model.source_path = path
    if standin is not None:
        warn_standin(f"HuBERT {path.name}", standin)
    _log.info("HuBERT loaded from %s: %d layers, width %d, %s on %s", path, cfg.layers, cfg.embed_dim, dtype, device)
    return model
