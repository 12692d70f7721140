"""The voice-conversion algorithm: 16 kHz source audio -> converted audio at the model's rate.

The steps (the reference RVC pipeline's, in our own code):

1. The source at 16 kHz is high-passed (5th-order Butterworth at 48 Hz, zero-phase).
2. Long inputs are cut into windows at quiet points: every `center_s` seconds the quietest 10 ms
   (smallest sum of |x| over 160 samples) within `query_s` seconds either side becomes a split.
   Each window is converted with `pad_s` seconds of real context either side (reflection at the
   ends of the input), and only its own part is kept, so memory is bounded by the window size and
   the seams fall in quiet places with the model having heard both sides.
3. Per window: HuBERT content features (50 frames/s, 256-dim for v1, 768-dim for v2); optionally
   blended with features retrieved from the training-set index (8 nearest neighbours, weights
   1/d^2, mix `index_rate`); upsampled x2 (nearest) to 100 frames/s, one per 10 ms synthesis frame.
4. Pitch (models with pitch guidance): f0 in Hz for the same frames, shifted by `f0_up_key`
   semitones; coarse pitch (1..255) and the Hz curve go to the NSF decoder. `protect` keeps
   unvoiced frames (consonants, breaths) closer to the source features when an index is used.
5. The synthesizer decodes `frames * hop` samples at its own rate (hop = rate / 100).
6. `rms_mix_rate` < 1 moves the output's loudness envelope (half-second RMS) towards the
   source's; `resample_sr` resamples (soxr); the result is peak-limited to 0.99.

Frame bookkeeping: a frame is 160 samples at 16 kHz and `hop` samples at the model's rate, so
window seams are sample-exact at both rates.

Against the reference (RVC WebUI 20240604, `infer/modules/vc/pipeline.py`): an input of up to
`max_s` seconds (one window) is converted with the same numbers: the same reflected context, the
same samples into HuBERT and the pitch extractor, the same frame count into the synthesizer, pitch
median-filtered for harvest only, the same loudness mix (tested against a committed fixture of
the reference's own output, `tests/test_vc_reference.py`). Where we differ, on purpose:
- Output length: exactly the input's duration (T * rate / 16000 samples). The reference's output
  is 1-2 frames (10-20 ms) shorter: its synthesizer stops where HuBERT's frames end and it cuts the
  right context off by length from there. Our frames are taken by time, so the common part is the
  same samples and the last frames come from the synthesized right context; a converted vocal
  keeps its place against the original accompaniment.
- Long inputs: pitch is extracted per window (with its context) instead of once for the whole
  input, so memory is bounded by the window; every window gets exactly its frames (the reference
  gives inner windows one extra frame of input and loses a frame at a seam when HuBERT's frame
  count comes out even).
- The output stays float32 (the reference rounds to int16); resampling is soxr HQ, as librosa's
  default in the reference.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from infer.lib.audio import resample
from infer.lib.errors import UserInputError

HUBERT_SR = 16000  # content features and pitch work at 16 kHz
FRAME = 160  # samples at 16 kHz per synthesis frame (10 ms)
FRAMES_PER_SECOND = HUBERT_SR // FRAME  # 100
NEIGHBOURS = 8  # retrieved training frames per source frame
HIGH_PASS_HZ = 48.0
HIGH_PASS_ORDER = 5
INPUT_PEAK = 0.95  # the 16 kHz input is scaled down to this peak when louder
OUTPUT_PEAK = 0.99  # the output is scaled down to this peak when louder
# On the CPU the synthesizer runs on a frame count rounded up to a multiple of this (the padding is
# masked in the content encoder and flow; it changes only the decoder's last ~6 frames, which fall in
# the window's discarded right context, so it is done only when that context is >= SYNTH_TAIL_FRAMES).
SYNTH_BUCKET_FRAMES = 256
SYNTH_TAIL_FRAMES = 16
RMS_BLOCK_FRAMES = 16  # half-second loudness frames squared at a time in `mix_rms` (8 s of audio)


# ------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class ConvertParams:
    """The user's conversion settings (the reference names and defaults).

    f0_up_key: pitch shift in semitones (+12 = one octave up), -48..48.
    f0_method: pitch extractor (`infer.lib.f0.F0_METHODS`); ignored by models without pitch.
    index_rate: 0..1, share of index-retrieved features (0 = source features only).
    filter_radius: >= 3 median-filters harvest's pitch curve over 3 frames (the reference: other
        methods are not filtered); 0..7.
    resample_sr: output rate in Hz, 0 = the model's own rate; otherwise >= 16000.
    rms_mix_rate: 0..1; 1 keeps the model's loudness envelope, 0 copies the source's.
    protect: 0..0.5; how much of the retrieved features unvoiced frames keep (0.5 = no protection).
    speaker_id: speaker embedding row (0 for single-speaker models).
    seed: seeds the synthesizer's sampling noise for reproducible output (None = random).
    """

    f0_up_key: float = 0.0
    f0_method: str = "rmvpe"
    index_rate: float = 0.75
    filter_radius: int = 3
    resample_sr: int = 0
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    speaker_id: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        from infer.lib.f0 import F0_METHODS

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserInputError(msg)

        need(
            isinstance(self.f0_up_key, int | float) and -48 <= self.f0_up_key <= 48,
            f"f0_up_key is a pitch shift in semitones between -48 and 48, got {self.f0_up_key!r}",
        )
        need(
            self.f0_method in F0_METHODS,
            f"unknown f0_method {self.f0_method!r}: choose one of {', '.join(F0_METHODS)}",
        )
        need(0.0 <= self.index_rate <= 1.0, f"index_rate must be between 0 and 1, got {self.index_rate}")
        need(
            isinstance(self.filter_radius, int) and 0 <= self.filter_radius <= 7,
            f"filter_radius must be an integer 0..7, got {self.filter_radius!r}",
        )
        need(
            isinstance(self.resample_sr, int) and (self.resample_sr == 0 or 16000 <= self.resample_sr <= 192000),
            f"resample_sr must be 0 (keep the model's rate) or a rate in Hz from 16000 to 192000, got {self.resample_sr!r}",
        )
        need(0.0 <= self.rms_mix_rate <= 1.0, f"rms_mix_rate must be between 0 and 1, got {self.rms_mix_rate}")
        need(0.0 <= self.protect <= 0.5, f"protect must be between 0 and 0.5, got {self.protect}")
        need(
            isinstance(self.speaker_id, int) and self.speaker_id >= 0,
            f"speaker_id must be an integer >= 0, got {self.speaker_id!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowConfig:
    """How long inputs are cut (seconds at 16 kHz; the reference `x_pad/x_query/x_center/x_max`).

    pad_s: context converted and thrown away on each side of a window.
    query_s: a split may move this far from its nominal place to find a quiet point.
    center_s: nominal distance between splits.
    max_s: inputs up to this long are converted in one window.
    """

    pad_s: float = 1.0
    query_s: float = 6.0
    center_s: float = 38.0
    max_s: float = 41.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.pad_s <= 10:
            raise ValueError(f"pad_s must be in [0.05, 10] seconds, got {self.pad_s}")
        if not 0 <= self.query_s < self.center_s / 2:
            raise ValueError(f"query_s must be in [0, center_s / 2), got {self.query_s} (center_s {self.center_s})")
        if self.max_s < self.center_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= center_s ({self.center_s})")

    @classmethod
    def for_device(cls, device: torch.device | str, half: bool) -> WindowConfig:
        """The reference choices: longer windows with more context on a GPU in fp16."""
        if torch.device(device).type == "cuda" and half:
            return cls(pad_s=3.0, query_s=10.0, center_s=60.0, max_s=65.0)
        return cls()

    @property
    def pad_frames(self) -> int:
        return max(1, round(self.pad_s * FRAMES_PER_SECOND))


@dataclass(frozen=True)
class FeatureIndex:
    """A loaded retrieval index: the faiss index and all its vectors [N, dim] float32."""

    index: Any
    vectors: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])


class ContentEncoder(Protocol):
    """What the pipeline needs from HuBERT (`infer.lib.hubert.HubertModel`)."""

    def extract(self, wav16k: torch.Tensor, padding_mask: torch.Tensor | None, version: str) -> torch.Tensor: ...


PitchFn = Callable[[np.ndarray, int], np.ndarray]
"""(16 kHz audio [T] float32, n_frames) -> f0 in Hz [n_frames] (frame i centred at i * 10 ms)."""


@dataclass
class ConversionStats:
    """What one conversion did: windows, index use, seconds per step."""

    windows: int = 0
    split_frames: list[int] = field(default_factory=list)  # window starts (10 ms frames of the source)
    index_used: bool = False
    index_searches: int = 0  # frames looked up in the index
    input_seconds: float = 0.0
    seconds_features: float = 0.0
    seconds_f0: float = 0.0
    seconds_synthesis: float = 0.0
    seconds_total: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------ signal steps
def high_pass(audio16k: np.ndarray) -> np.ndarray:
    """Remove rumble below 48 Hz (5th-order Butterworth, forward-backward): [T] -> [T] float32."""
    from scipy import signal

    if len(audio16k) < 3 * (2 * HIGH_PASS_ORDER + 1):  # too short for filtfilt's edge padding
        return np.asarray(audio16k, np.float32)
    sos = signal.butter(HIGH_PASS_ORDER, HIGH_PASS_HZ, btype="highpass", fs=HUBERT_SR, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(audio16k, np.float64)).astype(np.float32)


def plan_windows(audio16k: np.ndarray, window: WindowConfig) -> list[tuple[int, int]]:
    """Cut the source into windows at quiet points: [(first_frame, end_frame)], 10 ms frames.

    The windows tile `ceil(T / 160)` frames without gaps or overlap. Short inputs (<= max_s) are one
    window. Otherwise every `center_s` seconds a split is placed at the quietest 10 ms (smallest
    sum of |x|) within `query_s` seconds either side.
    """
    n = len(audio16k)
    total = math.ceil(n / FRAME)
    if n <= window.max_s * HUBERT_SR or total < 2:
        return [(0, total)]
    # loudness of the 10 ms around every sample: moving sum of |x| over 160 samples
    padded = np.pad(np.abs(audio16k.astype(np.float64)), (FRAME // 2, FRAME // 2), mode="reflect")
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    loud = csum[FRAME : FRAME + n] - csum[:n]
    center = round(window.center_s * HUBERT_SR)
    query = round(window.query_s * HUBERT_SR)
    cuts: list[int] = []
    for t in range(center, n, center):
        lo, hi = max(0, t - query), min(n, t + query)
        quiet = lo + int(np.argmin(loud[lo:hi]))
        frame = quiet // FRAME
        if 0 < frame < total and (not cuts or frame > cuts[-1]):
            cuts.append(frame)
    bounds = [0, *cuts, total]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def retrieve_features(feats: np.ndarray, index: FeatureIndex, k: int = NEIGHBOURS) -> np.ndarray:
    """For each frame [T, C] the inverse-square-distance weighted mean of its k nearest index vectors.

    Neighbours faiss could not fill (fewer than k vectors probed) get no weight; an exact match
    (distance 0) takes all the weight.
    """
    k = max(1, min(k, index.size))
    dist, ids = index.index.search(np.ascontiguousarray(feats, dtype=np.float32), k)
    valid = ids >= 0
    d = np.maximum(dist.astype(np.float64), 1e-12)  # faiss L2 distances are squared already
    w = np.where(valid, 1.0 / np.square(d), 0.0)
    wsum = w.sum(axis=1, keepdims=True)
    none = wsum[:, 0] <= 0
    w = w / np.where(wsum > 0, wsum, 1.0)
    out = np.einsum("tk,tkc->tc", w, index.vectors[np.where(valid, ids, 0)].astype(np.float64))
    out[none] = feats[none]  # nothing found: keep the source frame
    return out.astype(np.float32)


def protect_mask(pitchf: torch.Tensor, protect: float) -> torch.Tensor:
    """Per-frame share of the retrieved features: 1 for voiced frames, `protect` for unvoiced. [B,T,1]."""
    return torch.where(pitchf > 0, 1.0, protect).to(torch.float32).unsqueeze(-1)


def _envelope_at(env: np.ndarray, n: int, start: int, stop: int) -> np.ndarray:
    """`env` stretched linearly onto `n` samples, samples start..stop (float64).

    The mapping of `torch.nn.functional.interpolate(mode="linear", align_corners=False)`, which the
    reference uses: sample i reads `env` at max(0, (i + 0.5) * len(env) / n - 0.5), held at the ends.
    """
    pos = np.maximum((np.arange(start, stop, dtype=np.float64) + 0.5) * (len(env) / n) - 0.5, 0.0)
    return np.interp(pos, np.arange(len(env), dtype=np.float64), env)


def mix_rms(
    source16k: np.ndarray,
    converted: np.ndarray,
    out_sr: int,
    rate: float,
    span: int | None = None,
    chunk: int = 1 << 20,
) -> np.ndarray:
    """Move `converted`'s loudness envelope towards the source's: out = y * rms_src^(1-rate) * rms_y^(rate-1).

    As the reference (`change_rms`): RMS over centred half-second frames (frame = hop = sr / 2
    samples), both envelopes stretched linearly onto the output's first `span` samples (default:
    all) with `interpolate`'s align_corners=False mapping (`_envelope_at`), the output's floored at
    1e-6. The reference's output is the synthesized frames minus the context, 1-2 frames short of
    the input's end; `Pipeline.run` passes that length as `span`, so the gain is the reference's
    sample for sample, and the samples past `span` (the last 10-20 ms) keep the gain at its end.
    The envelopes are `frame_rms` (`librosa.feature.rms`'s values bit for bit), `RMS_BLOCK_FRAMES`
    frames at a time. Works `chunk` samples at a time (memory stays bounded). rate 1 returns
    `converted` unchanged; otherwise `converted` is scaled in place and returned.
    """
    from infer.lib.slicer import frame_rms

    if rate >= 1.0 or len(converted) == 0:
        return converted

    def envelope(y: np.ndarray, sr: int) -> np.ndarray:
        return frame_rms(y, sr // 2 * 2, sr // 2, block=RMS_BLOCK_FRAMES).astype(np.float64)

    n = len(converted)
    span = n if span is None else min(max(int(span), 1), n)
    converted = np.asarray(converted, np.float32)
    src = envelope(np.asarray(source16k, np.float32), HUBERT_SR)
    out = envelope(converted[:span], out_sr)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        s_env = _envelope_at(src, span, start, stop)
        o_env = np.maximum(_envelope_at(out, span, start, stop), 1e-6)
        converted[start:stop] *= (np.power(s_env, 1.0 - rate) * np.power(o_env, rate - 1.0)).astype(np.float32)
    return converted


def limit_peak(audio: np.ndarray, peak: float = OUTPUT_PEAK) -> np.ndarray:
    """Scale down to `peak` when louder; float32."""
    m = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if m > peak:
        audio = audio * (peak / m)
    return np.asarray(audio, np.float32)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's RNG inside the block only (the caller's RNG state is restored after)."""
    if seed is None:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def onednn(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """On the CPU, run with oneDNN (mkldnn) on or off inside the block (restored after).

    Conversion runs with oneDNN on: its convolutions take less CPU time than PyTorch's own CPU
    kernels, which allocate and free im2col buffers on every call. oneDNN keeps a primitive for every
    input shape it sees, small for HuBERT and RMVPE and tens of MiB for the synthesizer, so the
    synthesizer only ever sees frame counts rounded up to `SYNTH_BUCKET_FRAMES` (a few shapes: memory
    stays bounded on long inputs). The figures are in bench/README.md.
    """
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        yield
        return
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled  # type: ignore[assignment]  # torch declares the flag as its descriptor
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


_MALLOC_TUNED = False
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc reuse freed blocks of up to `limit` bytes instead of unmapping them (once per process).

    By default glibc serves every block over 32 MiB with a fresh mmap and unmaps it when freed, and
    hands heap tops back to the kernel: the synthesizer's audio-rate activations (tens of MiB each,
    dozens per window) are then zero-filled page by page on every use, in system time (figures in
    bench/README.md). With mmap and trim thresholds at `limit`, freed activations are reused;
    the peak is unchanged (the same blocks live at once), but the process keeps its peak heap after a
    conversion. Process-wide and permanent; a no-op (False) where glibc's `mallopt` is not there.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 * limit))
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


def bucket_frames(n: int, bucket: int) -> int:
    """`n` rounded up to a multiple of `bucket` (bucket <= 1: n)."""
    return n if bucket <= 1 else -(-n // bucket) * bucket


# ------------------------------------------------------------------------------------ the pipeline
class Pipeline:
    """Converts 16 kHz audio with one synthesizer, content encoder, pitch function and index.

    net_g: the synthesizer (`infer.lib.models.synthesizer.Synthesizer`, eval mode) with `.cfg`,
    `.use_f0`; encoder: HuBERT; pitch_fn: needed when `net_g.use_f0`; index: optional.
    """

    def __init__(
        self,
        net_g: Any,
        encoder: ContentEncoder,
        *,
        version: str,
        content_dim: int,
        sample_rate: int,
        hop: int,
        use_f0: bool,
        n_speakers: int,
        pitch_fn: PitchFn | None = None,
        index: FeatureIndex | None = None,
        device: torch.device | str = "cpu",
        window: WindowConfig | None = None,
    ) -> None:
        if hop * FRAMES_PER_SECOND != sample_rate:
            raise ValueError(f"hop {hop} at {sample_rate} Hz is not 10 ms")
        if use_f0 and pitch_fn is None:
            raise ValueError("a model with pitch guidance needs a pitch function")
        self.net_g = net_g
        self.encoder = encoder
        self.version = version
        self.content_dim = content_dim
        self.sample_rate = sample_rate
        self.hop = hop
        self.use_f0 = use_f0
        self.n_speakers = n_speakers
        self.pitch_fn = pitch_fn
        self.index = index
        self.device = torch.device(device)
        self.window = window or WindowConfig()
        self.dtype = next(net_g.parameters()).dtype

    def output_rate(self, params: ConvertParams) -> int:
        return params.resample_sr or self.sample_rate

    def run(self, audio16k: np.ndarray, params: ConvertParams) -> tuple[np.ndarray, int, ConversionStats]:
        """Source [T] float at 16 kHz -> (audio float32 [T * rate / 16000], rate, stats)."""
        t_start = time.perf_counter()
        x = np.asarray(audio16k, np.float32)
        if x.ndim != 1:
            raise UserInputError(f"expected mono audio, got an array of shape {x.shape}")
        if len(x) < FRAME:
            raise UserInputError(f"the input is too short to convert ({len(x)} samples at 16 kHz; need >= 10 ms)")
        if not np.all(np.isfinite(x)):
            raise UserInputError("the input audio contains NaN or infinite samples")
        if params.speaker_id >= self.n_speakers:
            raise UserInputError(
                f"speaker_id {params.speaker_id} is out of range: this model has {self.n_speakers} speaker(s) (0..{self.n_speakers - 1})"
            )
        peak = float(np.max(np.abs(x)))
        if peak > INPUT_PEAK:
            x = x * (INPUT_PEAK / peak)
        x = high_pass(x)
        stats = ConversionStats(input_seconds=len(x) / HUBERT_SR)
        if self.device.type == "cpu":
            keep_freed_memory()

        spans = plan_windows(x, self.window)
        total = spans[-1][1]
        pad = self.window.pad_frames
        # the source with `pad` frames of reflected context each side (the reference's audio_pad)
        padded = np.pad(x, (pad * FRAME, pad * FRAME), mode="reflect")
        out = np.zeros(total * self.hop, np.float32)
        sid = torch.tensor([params.speaker_id], device=self.device, dtype=torch.long)
        use_index = self.index is not None and params.index_rate > 0
        stats.index_used = use_index
        span = 0  # output samples the reference keeps (it cuts the context off by length)
        with torch.inference_mode(), seeded(params.seed), onednn(self.device, True):
            for a, b in spans:
                seg = padded[a * FRAME : (b + 2 * pad) * FRAME]  # the last window ends with the input
                y = self._convert_window(seg, params, sid, use_index, stats)
                span += max(0, len(y) - 2 * pad * self.hop)  # what the reference would keep of it
                keep = y[pad * self.hop : (pad + b - a) * self.hop]
                out[a * self.hop : a * self.hop + len(keep)] = keep
                stats.windows += 1
                stats.split_frames.append(a)
        n_out = round(len(x) * self.sample_rate / HUBERT_SR)
        out = out[:n_out]
        out = mix_rms(x, out, self.sample_rate, params.rms_mix_rate, span=span)
        rate = self.output_rate(params)
        if rate != self.sample_rate:
            out = resample(out, self.sample_rate, rate, fix_length=False)
        stats.seconds_total = time.perf_counter() - t_start
        return limit_peak(out), rate, stats

    def _convert_window(
        self, seg: np.ndarray, params: ConvertParams, sid: torch.Tensor, use_index: bool, stats: ConversionStats
    ) -> np.ndarray:
        """One window [L] at 16 kHz -> audio [n * hop] at the model's rate, n = min(L // 160, HuBERT frames * 2).

        HuBERT gives (L - 80) // 320 frames (50/s), so n is one or two frames short of L // 160; the
        caller keeps only the middle, which the synthesizer always covers (`pad_frames` >= 5).
        """
        t0 = time.perf_counter()
        wav = torch.from_numpy(seg).to(self.device)[None]
        feats = self.encoder.extract(wav, None, self.version)  # [1, F, C], 50 frames/s
        if feats.shape[-1] != self.content_dim:
            raise UserInputError(
                f"the content encoder gives {feats.shape[-1]}-dim features but this {self.version} model takes "
                f"{self.content_dim}-dim ones: use the HuBERT base checkpoint (hubert_base.pt)"
            )
        feats = feats.to(torch.float32)
        source = feats
        if use_index:
            assert self.index is not None
            found = retrieve_features(feats[0].cpu().numpy(), self.index)
            stats.index_searches += found.shape[0]
            found_t = torch.from_numpy(found).to(feats.device)[None]
            feats = params.index_rate * found_t + (1.0 - params.index_rate) * feats
        feats = feats.repeat_interleave(2, dim=1)  # 100 frames/s
        n = min(feats.shape[1], len(seg) // FRAME)
        t1 = time.perf_counter()
        stats.seconds_features += t1 - t0

        pitch = pitchf = None
        if self.use_f0:
            assert self.pitch_fn is not None
            f0 = np.asarray(self.pitch_fn(seg, len(seg) // FRAME), np.float32)
            if params.f0_method == "harvest" and params.filter_radius >= 3:  # the reference: harvest only
                from scipy.signal import medfilt

                f0 = medfilt(f0, 3).astype(np.float32)
            f0 = f0 * np.float32(2.0 ** (params.f0_up_key / 12.0))
            n = min(n, len(f0))
            from infer.lib.f0 import coarse_f0

            pitchf = torch.from_numpy(f0[:n].copy()).to(self.device)[None]
            pitch = torch.from_numpy(coarse_f0(f0[:n])).to(self.device, torch.long)[None]
            if use_index and params.protect < 0.5:
                src = source.repeat_interleave(2, dim=1)[:, :n]
                share = protect_mask(pitchf, params.protect)
                feats = feats[:, :n] * share + src * (1.0 - share)
        t2 = time.perf_counter()
        stats.seconds_f0 += t2 - t1

        feats = feats[:, :n].to(self.dtype)
        lengths = torch.tensor([n], device=self.device, dtype=torch.long)
        m = n
        if self.device.type == "cpu" and self.window.pad_frames >= SYNTH_TAIL_FRAMES:
            m = bucket_frames(n, SYNTH_BUCKET_FRAMES)  # padded frames: masked content, unvoiced
            feats = torch.nn.functional.pad(feats, (0, 0, 0, m - n))
            if pitch is not None and pitchf is not None:
                pitch = torch.nn.functional.pad(pitch, (0, m - n), value=1)
                pitchf = torch.nn.functional.pad(pitchf, (0, m - n))
        audio = self.net_g.infer(feats, lengths, pitch, pitchf, sid)[0]
        y = audio[0, 0, : n * self.hop].float().cpu().numpy()
        stats.seconds_synthesis += time.perf_counter() - t2
        return y
