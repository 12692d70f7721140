"""Pitch accuracy per method on synthetic signals whose pitch is known exactly.

    .venv/bin/python -m bench.f0_accuracy                      # pm harvest dio crepe crepe-tiny fcpe
    .venv/bin/python -m bench.f0_accuracy --methods rmvpe --rmvpe-path assets/rmvpe/rmvpe.pt

Signals (16 kHz, harmonic tones with a 1/k spectrum, 8 harmonics): a steady tone with vibrato, a
glide over an octave and a half, each clean, with white noise at 10 dB and 0 dB SNR, and with silent gaps.
Scores (standard melody-extraction measures):
  RPA  raw pitch accuracy: voiced reference frames whose estimate is within 50 cents;
  VR   voicing recall: voiced reference frames the method calls voiced;
  VFA  voicing false alarm: unvoiced reference frames the method calls voiced.
Frames within 30 ms of a voicing change are not scored (onset/offset smearing is not pitch error).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

SR = 16000
HOP = 160


@dataclass(frozen=True)
class Signal:
    name: str
    audio: np.ndarray  # float32 [T]
    f0: np.ndarray  # Hz per 10 ms frame [T // 160 + 1], 0 = silent


def harmonic_tone(f0_per_sample: np.ndarray, n_harmonics: int = 8, amp: float = 0.3) -> np.ndarray:
    """A tone following `f0_per_sample` (Hz, one value per sample; 0 = silence), harmonics at 1/k."""
    phase = 2 * np.pi * np.cumsum(f0_per_sample) / SR
    x = sum((amp / k) * np.sin(k * phase) * (k * f0_per_sample < SR / 2) for k in range(1, n_harmonics + 1))
    return (x * (f0_per_sample > 0)).astype(np.float32)


def make_signal(
    kind: str, seconds: float = 2.0, noise_snr_db: float | None = None, gaps: bool = False, seed: int = 0
) -> Signal:
    """`kind` "vibrato" (220 Hz, +-50 cents at 5.5 Hz) or "glide" (110 -> 330 Hz, exponential).

    `gaps`: silence for the 2nd and 4th fifths of the clip. `noise_snr_db`: white noise at that SNR.
    """
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if kind == "vibrato":
        f = 220.0 * 2 ** ((50 / 1200) * np.sin(2 * np.pi * 5.5 * t))
    elif kind == "glide":
        f = 110.0 * 3.0 ** (t / seconds)
    else:
        raise ValueError(kind)
    if gaps:
        fifth = n // 5
        f = f.copy()
        f[fifth : 2 * fifth] = 0
        f[3 * fifth : 4 * fifth] = 0
    x = harmonic_tone(f)
    if noise_snr_db is not None:
        rng = np.random.default_rng(seed)
        p = float(np.mean(x[f > 0] ** 2))
        x = (x + rng.standard_normal(n) * np.sqrt(p / 10 ** (noise_snr_db / 10))).astype(np.float32)
    frames = np.arange(n // HOP + 1) * HOP
    ref = f[np.minimum(frames, n - 1)]
    name = f"{kind}{'+gaps' if gaps else ''}{f'+noise{noise_snr_db:g}dB' if noise_snr_db is not None else ''}"
    return Signal(name, x, ref.astype(np.float32))


def standard_signals(seconds: float = 2.0) -> list[Signal]:
    out = []
    for kind in ("vibrato", "glide"):
        out.append(make_signal(kind, seconds))
        out.append(make_signal(kind, seconds, noise_snr_db=10.0))
        out.append(make_signal(kind, seconds, noise_snr_db=0.0))
        out.append(make_signal(kind, seconds, gaps=True))
    return out


def score(est: np.ndarray, ref: np.ndarray, guard_frames: int = 3) -> dict[str, float]:
    """RPA / VR / VFA (fractions) of estimate `est` against reference `ref` (Hz per frame, 0 unvoiced)."""
    n = min(len(est), len(ref))
    est, ref = np.asarray(est[:n], np.float64), np.asarray(ref[:n], np.float64)
    rv, ev = ref > 0, est > 0
    change = np.flatnonzero(np.diff(rv.astype(np.int8))) + 1
    keep = np.ones(n, bool)
    keep[:guard_frames] = keep[n - guard_frames :] = False  # clip edges
    for c in change:
        keep[max(0, c - guard_frames) : c + guard_frames] = False
    voiced, unvoiced = rv & keep, ~rv & keep
    cents = np.full(n, np.inf)
    both = rv & ev
    cents[both] = np.abs(1200 * np.log2(est[both] / ref[both]))
    return {
        "rpa": float(np.mean(cents[voiced] <= 50)) if voiced.any() else float("nan"),
        "vr": float(np.mean(ev[voiced])) if voiced.any() else float("nan"),
        "vfa": float(np.mean(ev[unvoiced])) if unvoiced.any() else float("nan"),
    }


def extractor_for(method: str, rmvpe_path: str | None = None):  # -> F0Extractor
    """ "crepe-tiny" selects the tiny crepe model; everything else is an F0_METHODS name."""
    from infer.lib.f0 import F0Extractor

    if method == "crepe-tiny":
        return F0Extractor("crepe", crepe_model="tiny")
    if method in ("rmvpe", "rmvpe_gpu"):
        return F0Extractor(method, rmvpe_path=rmvpe_path)
    return F0Extractor(method)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["pm", "harvest", "dio", "crepe", "crepe-tiny", "fcpe"])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rmvpe-path", default=None, help="a real rmvpe.pt (stand-in weights score nothing)")
    args = ap.parse_args()
    signals = standard_signals(args.seconds)
    print(f"| method | signal | RPA | VR | VFA |\n|{'---|' * 5}")
    for method in args.methods:
        ex = extractor_for(method, args.rmvpe_path)
        for sig in signals:
            s = score(ex.compute(sig.audio), sig.f0)
            vfa = "-" if np.isnan(s["vfa"]) else f"{100 * s['vfa']:.1f}%"
            print(f"| {method} | {sig.name} | {100 * s['rpa']:.1f}% | {100 * s['vr']:.1f}% | {vfa} |", flush=True)


if __name__ == "__main__":
    main()
