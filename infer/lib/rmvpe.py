"""RMVPE pitch estimation: the network that the published `rmvpe.pt` holds, and its decoding.

The network is the reference `E2E(n_blocks=4, n_gru=1, kernel_size=(2, 2))`: a deep U-Net over the
log-mel spectrogram, a 3-channel conv, a bidirectional GRU and a 360-bin sigmoid classifier (20 cents a
bin). Parameter names equal the reference, so `rmvpe.pt` (a bare state dict) loads strictly.

Pipeline for 16 kHz audio of T samples:
  log-mel [128, F] (F = T // 160 + 1, centred frames, n_fft 1024, hop 160, 30..8000 Hz HTK mels,
  log(clamp(x, 1e-5)))  ->  frames zero-padded to a multiple of 32  ->  salience [F, 360]
  ->  local weighted average of the 9 bins around the peak, in cents  ->  f0 Hz [F] (0 = unvoiced,
  when the peak salience <= threshold).

Long audio is cut into windows of `chunk_frames` frames with `margin_frames` of context either side,
run as a batch and stitched (see `RMVPE.salience`); audio up to `chunk_frames` frames is run whole,
exactly as the reference does. Segments of the same padded length can be batched without changing a
single number (`RMVPE.infer_batch`). For inference the BatchNorms are folded into the convolutions before
them (`fold_batchnorm`): the reference's salience to about 1e-5, one pass over each activation less
(figures in bench/README.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infer.lib.errors import UserInputError, WeightsError
from infer.lib.log import get_logger

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_log = get_logger("rmvpe")

SAMPLE_RATE = 16000
HOP = 160
N_FFT = 1024
N_MELS = 128
MEL_FMIN = 30.0
MEL_FMAX = 8000.0
N_BINS = 360
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (about 31.7 Hz); 20 cents a bin
PAD_MULTIPLE = 32  # 5 pooling stages of 2 in time
DEFAULT_THRESHOLD = 0.03


# ----------------------------------------------------------------------------------------- network
class ConvBlockRes(nn.Module):
    """Two 3x3 conv-BN-ReLU layers with a residual (1x1 conv when the width changes)."""

    def __init__(self, in_ch: int, out_ch: int, momentum: float = 0.01) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=momentum),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch, momentum=momentum),
            nn.ReLU(),
        )
        self.shortcut: nn.Module = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


def _conv_blocks(in_ch: int, out_ch: int, n: int) -> nn.Sequential:
    """`n` ConvBlockRes in a row, the first from `in_ch` to `out_ch` channels (keys `<i>.conv...`)."""
    return nn.Sequential(*(ConvBlockRes(in_ch if i == 0 else out_ch, out_ch) for i in range(n)))


class ResBlocks(nn.Module):
    """`n` ConvBlockRes in a row (`conv.<i>`)."""

    def __init__(self, in_ch: int, out_ch: int, n: int) -> None:
        super().__init__()
        self.conv = _conv_blocks(in_ch, out_ch, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Encoder(nn.Module):
    """Input BatchNorm, then `n_layers` ResBlocks each followed by average pooling; the widths double from `base`.

    forward(x [B, 1, F, 128]) -> (bottom [B, C, F / 2^n, 128 / 2^n], the ResBlocks outputs before pooling).
    """

    def __init__(self, n_layers: int, n_blocks: int, pool: tuple[int, int], base: int = 16) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=0.01)
        chans = [1] + [base * 2**i for i in range(n_layers)]
        self.layers = nn.ModuleList([ResBlocks(chans[i], chans[i + 1], n_blocks) for i in range(n_layers)])
        self.pool = nn.AvgPool2d(pool)
        self.out_channels = chans[-1] * 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips: list[torch.Tensor] = []
        x = self.bn(x)
        for layer in self.layers:
            x = layer(x)
            skips.append(x)
            x = self.pool(x)
        return x, skips


class Intermediate(nn.Module):
    """`n_layers` ResBlocks at the bottom of the U-Net (`layers.<i>`)."""

    def __init__(self, in_ch: int, out_ch: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(ResBlocks(in_ch if i == 0 else out_ch, out_ch, n_blocks) for i in range(n_layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """Transposed conv upsampling (`conv1`), concat with the skip, then `n_blocks` ConvBlockRes (`conv2`)."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int], n_blocks: int) -> None:
        super().__init__()
        out_pad = (0, 1) if tuple(stride) == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_ch, out_ch, 3, stride=stride, padding=1, output_padding=out_pad, bias=False),
            nn.BatchNorm2d(out_ch, momentum=0.01),
            nn.ReLU(),
        )
        self.conv2 = _conv_blocks(out_ch * 2, out_ch, n_blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.cat((self.conv1(x), skip), dim=1))


class Decoder(nn.Module):
    def __init__(self, in_ch: int, n_layers: int, stride: tuple[int, int], n_blocks: int) -> None:
        super().__init__()
        chans = [in_ch // 2**i for i in range(n_layers + 1)]
        self.layers = nn.ModuleList([DecoderBlock(chans[i], chans[i + 1], stride, n_blocks) for i in range(n_layers)])

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips), strict=True):
            x = layer(x, skip)
        return x


class DeepUnet(nn.Module):
    def __init__(self, pool: tuple[int, int], n_blocks: int, n_layers: int = 5, n_inter: int = 4) -> None:
        super().__init__()
        self.encoder = Encoder(n_layers, n_blocks, pool)
        c = self.encoder.out_channels
        self.intermediate = Intermediate(c // 2, c, n_inter, n_blocks)
        self.decoder = Decoder(c, n_layers, pool, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, n_hidden, num_layers=n_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RMVPENet(nn.Module):
    """The reference `E2E(4, 1, (2, 2))`. forward(mel [B, 128, F], F a multiple of 32) -> salience [B, F, 360]."""

    def __init__(self, n_blocks: int = 4, n_gru: int = 1, pool: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.unet = DeepUnet(pool, n_blocks)
        self.cnn = nn.Conv2d(16, 3, 3, padding=1)
        # fc.0 BiGRU, fc.1 Linear, fc.2 Dropout (identity at inference), fc.3 Sigmoid
        self.fc = nn.Sequential(BiGRU(3 * N_MELS, 256, n_gru), nn.Linear(512, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, 128, F] -> salience [B, F, 360].

        On the CPU a batch goes row by row through the full-resolution U-Net layers (a row's activations
        stay in cache; batched they do not) and as a whole through the bottleneck (few positions a row:
        a batch makes its matrix products efficient) and the GRU: the same numbers as either way alone.
        """
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, F, 128]
        if x.device.type == "cpu" and x.shape[0] > 1:
            encoded = [self.unet.encoder(row[None]) for row in x]
            mid = self.unet.intermediate(torch.cat([bottom for bottom, _ in encoded]))
            x = torch.cat([self.cnn(self.unet.decoder(m[None], skips)) for m, (_, skips) in zip(mid, encoded)])
        else:
            x = self.cnn(self.unet(x))  # [B, 3, F, 128]
        x = x.transpose(1, 2).flatten(-2)  # [B, F, 384]
        return self.fc(x)


def fold_batchnorm(net: ModuleT) -> ModuleT:
    """Fold every eval-mode BatchNorm2d that follows a (transposed) convolution into it, in place.

    `bn(conv(x))` = `conv'(x)` with weight * s (per output channel) and bias shift + bias * s, where
    s = gamma / sqrt(running_var + eps) and shift = beta - running_mean * s: the same numbers to float
    rounding (1e-7 a layer, 1.1e-5 on the salience after the whole net), one pass over each activation
    less.
    The BatchNorm becomes `nn.Identity`, so the folded net's state dict no longer has the published layout:
    fold only an inference copy (`RMVPE` does). The input BatchNorm (`unet.encoder.bn`) stays: the convolution
    after it zero-pads its output, which a folded shift would not. Idempotent.
    """
    for seq in net.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) or not isinstance(bn, nn.BatchNorm2d):
                continue
            if bn.training or bn.running_mean is None or bn.running_var is None or conv.groups != 1:
                raise ValueError("fold_batchnorm needs eval-mode BatchNorm with running statistics")
            with torch.no_grad():
                scale = torch.rsqrt(bn.running_var.double() + bn.eps)
                if bn.weight is not None:
                    scale = scale * bn.weight.double()
                shift = -bn.running_mean.double() * scale
                if bn.bias is not None:
                    shift = shift + bn.bias.double()
                if conv.bias is not None:
                    shift = shift + conv.bias.double() * scale
                out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
                shape = [1] * conv.weight.dim()
                shape[out_dim] = -1
                conv.weight.copy_((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
                conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
            seq[i + 1] = nn.Identity()
    return net


# ------------------------------------------------------------------------------------- front end
class LogMel(nn.Module):
    """Log-mel spectrogram of 16 kHz audio: [B, T] -> [B, 128, T // 160 + 1] (centred, reflect-padded)."""

    basis: torch.Tensor  # [128, N_FFT // 2 + 1] HTK mel filters
    window: torch.Tensor  # [N_FFT] Hann

    def __init__(self) -> None:
        super().__init__()
        import librosa

        basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=MEL_FMIN, fmax=MEL_FMAX, htk=True)
        self.register_buffer("basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            audio.float(), N_FFT, hop_length=HOP, window=self.window, center=True, return_complex=True
        ).abs()
        return torch.log(torch.clamp(self.basis @ spec, min=1e-5))


def n_frames_for(n_samples: int) -> int:
    """Frames RMVPE yields for `n_samples` of 16 kHz audio (centred STFT): n // 160 + 1."""
    return n_samples // HOP + 1


def decode_salience(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Salience [F, 360] -> f0 Hz [F] float32: salience-weighted mean cents of the 9 bins around the peak.

    Frames whose peak salience is <= `threshold` are unvoiced (0 Hz).
    """
    sal = np.asarray(salience, dtype=np.float32)
    n = sal.shape[0]
    center = np.argmax(sal, axis=1)
    padded = np.pad(sal, ((0, 0), (4, 4)))
    idx = center[:, None] + np.arange(9)[None, :]  # window in padded coordinates
    window = np.take_along_axis(padded, idx, axis=1)
    cents_map = np.pad(20.0 * np.arange(N_BINS) + CENTS_OFFSET, (4, 4))
    cents = (window * cents_map[idx]).sum(1) / window.sum(1)
    voiced = sal.max(axis=1) > threshold if n else np.zeros(0, bool)
    f0 = np.where(voiced, 10.0 * 2.0 ** (cents / 1200.0), 0.0)
    return f0.astype(np.float32)


# ---------------------------------------------------------------------------------------- runner
class RMVPE:
    """A loaded RMVPE model on one device. Use `load_rmvpe`.

    `chunk_frames`: audio longer than this many frames is cut into windows (memory stays bounded on
    long songs); `margin_frames` of context on each side of a window are computed and dropped.
    `batch_size`: windows (or segments) per forward pass. `net` is put in eval mode and its BatchNorms are
    folded into the convolutions (`fold_batchnorm`, in place): pass a network you use for inference only.
    """

    def __init__(
        self,
        net: RMVPENet,
        device: torch.device | str = "cpu",
        half: bool = False,
        chunk_frames: int = 3200,
        margin_frames: int = 64,
        batch_size: int = 8,
    ) -> None:
        self.device = torch.device(device)
        self.half = bool(half) and self.device.type == "cuda"
        if chunk_frames % PAD_MULTIPLE or margin_frames % PAD_MULTIPLE or chunk_frames <= 0:
            raise ValueError(f"chunk_frames and margin_frames must be multiples of {PAD_MULTIPLE}")
        self.chunk_frames = chunk_frames
        self.margin_frames = margin_frames
        self.batch_size = max(1, int(batch_size))
        self.net = fold_batchnorm(net.eval()).to(self.device)
        if self.half:
            self.net = self.net.half()
        self.mel = LogMel().to(self.device)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    # -- pieces, all under inference_mode by the callers
    def log_mel(self, audio16k: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[T] or [B, T] 16 kHz audio -> log-mel [B, 128, frames] float32 on the model device."""
        x = torch.as_tensor(np.asarray(audio16k, dtype=np.float32) if not torch.is_tensor(audio16k) else audio16k)
        if x.dim() == 1:
            x = x.unsqueeze(0)
        with torch.inference_mode():
            return self.mel(x.to(self.device, torch.float32))

    def _run(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, 128, F] -> salience [B, F, 360] float32 (pads F to a multiple of 32, crops after)."""
        n = mel.shape[-1]
        pad = -n % PAD_MULTIPLE
        if pad:
            mel = F.pad(mel, (0, pad))
        out = self.net(mel.to(self.dtype))
        return out[:, :n].float()

    def salience(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [1, 128, F] -> salience [F, 360] float32; windowed and batched beyond `chunk_frames`."""
        n = mel.shape[-1]
        with torch.inference_mode():
            if n <= self.chunk_frames:
                return self._run(mel)[0]
            c, m = self.chunk_frames, self.margin_frames
            starts = list(range(0, n, c))
            windows = []
            for s in starts:
                lo, hi = max(0, s - m), min(n, s + c + m)
                w = mel[..., lo:hi]
                full = c + 2 * m
                if w.shape[-1] < full:  # the last (or a short first) window: pad to the common size
                    w = F.pad(w, (0, full - w.shape[-1]))
                windows.append((w, s - lo, min(c, n - s)))
            pieces = []
            for b in range(0, len(windows), self.batch_size):
                group = windows[b : b + self.batch_size]
                sal = self._run(torch.cat([w for w, _, _ in group], dim=0))
                for j, (_, off, keep) in enumerate(group):
                    pieces.append(sal[j, off : off + keep])
            return torch.cat(pieces, dim=0)

    def infer_from_audio(self, audio16k: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """16 kHz mono float audio [T] -> f0 Hz float32 [T // 160 + 1] (0 where unvoiced)."""
        audio = np.asarray(audio16k, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio [T], got shape {audio.shape}")
        sal = self.salience(self.log_mel(audio))
        return decode_salience(sal.cpu().numpy(), threshold)

    def infer_batch(self, audios: list[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
        """Many segments: those with the same padded frame count share a forward pass.

        Results equal `infer_from_audio` on each segment (the padding is the same as alone).
        Segments longer than `chunk_frames` go through `infer_from_audio`.
        """
        out: dict[int, np.ndarray] = {}
        groups: dict[int, list[int]] = {}
        for i, a in enumerate(audios):
            nf = n_frames_for(len(a))
            if nf > self.chunk_frames:
                out[i] = self.infer_from_audio(a, threshold)
            else:
                groups.setdefault(math.ceil(nf / PAD_MULTIPLE), []).append(i)
        with torch.inference_mode():
            for _, idxs in sorted(groups.items()):
                for b in range(0, len(idxs), self.batch_size):
                    chunk = idxs[b : b + self.batch_size]
                    mels = [self.log_mel(audios[i]) for i in chunk]
                    width = max(m.shape[-1] for m in mels)
                    width += -width % PAD_MULTIPLE
                    batch = torch.cat([F.pad(m, (0, width - m.shape[-1])) for m in mels], dim=0)
                    sal = self.net(batch.to(self.dtype)).float().cpu().numpy()
                    for j, i in enumerate(chunk):
                        out[i] = decode_salience(sal[j, : mels[j].shape[-1]], threshold)
        return [out[i] for i in range(len(audios))]


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    from infer.lib.standin import pop_standin_marker, read_sidecar, warn_standin

    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a torch file
        raise WeightsError(f"could not read RMVPE weights {path}: {e}") from e
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path} is not an RMVPE state dict (got {type(sd).__name__})")
    desc = pop_standin_marker(sd) or read_sidecar(path)
    if desc is not None:
        warn_standin("RMVPE", desc)
    return sd


def load_rmvpe(
    path: str | Path,
    device: torch.device | str = "cpu",
    half: bool = False,
    **kwargs: int,
) -> RMVPE:
    """Load `rmvpe.pt` (a bare state dict, fp32 or fp16) strictly; `half` applies on CUDA only.

    Raises UserInputError when the file is missing, WeightsError when it does not fit the network.
    `kwargs` go to `RMVPE` (chunk_frames, margin_frames, batch_size).
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(
            f"RMVPE weights not found at {path}: run `python -m tools.download_weights` "
            "(or set RVC_WEIGHTS_DIR), or pick another f0 method"
        )
    sd = _state_dict_from_file(path)
    with torch.device("meta"):  # no random initialisation of 45M parameters that are replaced at once
        net = RMVPENet()
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    try:
        net.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        raise WeightsError(f"{path} does not hold the RMVPE network: {e}") from e
    return RMVPE(net, device=device, half=half, **kwargs)
