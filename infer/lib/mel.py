"""Linear and mel spectrograms for training (torch STFT), as the reference RVC computes them.

`spectrogram`: reflect-pad (n_fft - hop) / 2 on both sides, STFT with `center=False` and a Hann window
of `win_length`, magnitude sqrt(re^2 + im^2 + 1e-6) -> [B, n_fft // 2 + 1, frames] where
frames = samples // hop for segment-sized inputs. `spec_to_mel`: librosa's (Slaney) mel filter bank,
then log(clamp(x, 1e-5)). Everything is computed in float32 (also under autocast).

The Hann window and mel basis live in a `MelTransform` instance, one per `DataParams`, cached per
(device, dtype). The module-level functions use a small bounded LRU of such instances, so switching
configurations never grows an unbounded global cache.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from infer.lib.config import DataParams


class MelTransform:
    """STFT / mel helpers for one `DataParams` with per-(device, dtype) cached window and mel basis."""

    def __init__(self, data: DataParams) -> None:
        self.data = data
        self._windows: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._bases: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def window(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        key = (torch.device(device), dtype)
        if key not in self._windows:
            self._windows[key] = torch.hann_window(self.data.win_length, device=device, dtype=dtype)
        return self._windows[key]

    def mel_basis(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """[n_mel_channels, n_fft // 2 + 1] Slaney-normalised mel filter bank."""
        key = (torch.device(device), dtype)
        if key not in self._bases:
            import librosa

            d = self.data
            basis = librosa.filters.mel(
                sr=d.sampling_rate, n_fft=d.filter_length, n_mels=d.n_mel_channels, fmin=d.mel_fmin, fmax=d.mel_fmax
            )
            self._bases[key] = torch.from_numpy(basis).to(device=device, dtype=dtype)
        return self._bases[key]

    def spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        """Audio y [B, N] (float, -1..1) -> linear magnitude [B, n_fft // 2 + 1, frames] float32."""
        d = self.data
        with torch.autocast(y.device.type, enabled=False):
            y = y.float()
            pad = (d.filter_length - d.hop_length) // 2
            y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
            spec = torch.stft(
                y,
                d.filter_length,
                hop_length=d.hop_length,
                win_length=d.win_length,
                window=self.window(y.device),
                center=False,
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-6)

    def spec_to_mel(self, spec: torch.Tensor) -> torch.Tensor:
        """Linear magnitude [B, F, frames] -> log mel [B, n_mel_channels, frames] float32."""
        with torch.autocast(spec.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis(spec.device), spec.float())
            return torch.log(torch.clamp(mel, min=1e-5))

    def mel_spectrogram(self, y: torch.Tensor) -> torch.Tensor:
        """Audio y [B, N] -> log mel [B, n_mel_channels, frames] float32."""
        return self.spec_to_mel(self.spectrogram(y))


@functools.lru_cache(maxsize=8)
def mel_transform(data: DataParams) -> MelTransform:
    """The shared `MelTransform` for `data` (bounded LRU over configurations)."""
    return MelTransform(data)


def spectrogram(y: torch.Tensor, data: DataParams) -> torch.Tensor:
    """Audio y [B, N] -> linear magnitude spectrogram [B, data.spec_channels, frames] (float32)."""
    return mel_transform(data).spectrogram(y)


def spec_to_mel(spec: torch.Tensor, data: DataParams) -> torch.Tensor:
    """Linear magnitude [B, spec_channels, frames] -> log mel [B, n_mel_channels, frames]."""
    return mel_transform(data).spec_to_mel(spec)


def mel_spectrogram(y: torch.Tensor, data: DataParams) -> torch.Tensor:
    """Audio y [B, N] -> log mel [B, n_mel_channels, frames]."""
    return mel_transform(data).mel_spectrogram(y)
