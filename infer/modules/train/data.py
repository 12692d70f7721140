"""Training data: segments from the filelist, a length-bucketed batch sampler and the padding collate.

Shapes (T = spectrogram frames, 100 per second at every sample rate; hop = `cfg.data.hop_length`):
- spec  [spec_channels, T] float32 (linear magnitude, `infer.lib.mel.spectrogram`)
- wave  [1, T * hop] float32 in [-1, 1]
- phone [T, 256|768] float32 (HuBERT features at 50 frames/s repeated twice)
- pitch [T] int64 coarse 1..255, pitchf [T] float32 Hz (pitch models only)

Small datasets are loaded once and kept in memory (on the training device when it is a GPU); larger
ones are read from disk by DataLoader workers each epoch, so memory stays bounded whatever the length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from infer.lib.audio import average_channels
from infer.lib.config import RVCConfig
from infer.lib.errors import UserInputError
from infer.lib.log import get_logger
from infer.modules.train.filelist import FilelistEntry

MAX_FRAMES = 900  # the reference's cap on frames per segment (9 s)
# Bucket boundaries in frames. The reference buckets by file size ([100..900] in units of
# bytes // (3 * hop) of float32 files, i.e. 0.75..6.75 s); we bucket by frames directly and keep
# segments up to MAX_FRAMES (longer ones are cut). Segments of 0.75 s or less are left out.
BUCKET_BOUNDARIES: tuple[int, ...] = (75, 150, 225, 300, 375, 450, 525, 600, 675, MAX_FRAMES)

_log = get_logger("data")


@dataclass
class Sample:
    """One segment's tensors (see the module docstring for shapes)."""

    spec: torch.Tensor
    wave: torch.Tensor
    phone: torch.Tensor
    pitch: torch.Tensor | None
    pitchf: torch.Tensor | None
    sid: int

    def nbytes(self) -> int:
        ts = [self.spec, self.wave, self.phone, self.pitch, self.pitchf]
        return sum(t.element_size() * t.nelement() for t in ts if t is not None)

    def to(self, device: torch.device) -> Sample:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        spec, wave, phone = self.spec.to(device), self.wave.to(device), self.phone.to(device)
        return Sample(spec, wave, phone, mv(self.pitch), mv(self.pitchf), self.sid)


@dataclass
class Batch:
    """A padded batch, longest first: phone [B,T,C], pitch/pitchf [B,T], spec [B,F,T], wave [B,1,T*hop]."""

    phone: torch.Tensor
    phone_lengths: torch.Tensor
    pitch: torch.Tensor | None
    pitchf: torch.Tensor | None
    spec: torch.Tensor
    spec_lengths: torch.Tensor
    wave: torch.Tensor
    wave_lengths: torch.Tensor
    sid: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        """The batch with `fn` applied to each of its tensors (in field order)."""

        def opt(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else fn(t)

        return Batch(
            phone=fn(self.phone),
            phone_lengths=fn(self.phone_lengths),
            pitch=opt(self.pitch),
            pitchf=opt(self.pitchf),
            spec=fn(self.spec),
            spec_lengths=fn(self.spec_lengths),
            wave=fn(self.wave),
            wave_lengths=fn(self.wave_lengths),
            sid=fn(self.sid),
        )

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return self.map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (DataLoader(pin_memory=True) calls this in its pinning thread),
        so `to(cuda, non_blocking=True)` copies asynchronously."""
        return self.map(lambda t: t.pin_memory())

    @property
    def size(self) -> int:
        return int(self.phone.shape[0])


def wav_frames(path: str, hop: int) -> int:
    """Spectrogram frames of a wav file without reading its samples (capped at MAX_FRAMES)."""
    import soundfile as sf

    return min(sf.info(str(path)).frames // hop, MAX_FRAMES)


def load_sample(entry: FilelistEntry, cfg: RVCConfig) -> Sample:
    """Read one segment's files and compute its spectrogram; lengths aligned to the shortest stream."""
    import soundfile as sf

    from infer.lib.mel import spectrogram

    audio, sr = sf.read(str(entry.gt_wav), dtype="float32", always_2d=False)
    if sr != cfg.sr:
        raise UserInputError(f"{entry.gt_wav} is at {sr} Hz but the model trains at {cfg.sr} Hz: preprocess again")
    if audio.ndim > 1:
        audio = average_channels(audio)
    hop = cfg.data.hop_length
    phone = np.load(entry.feature, allow_pickle=False).astype(np.float32, copy=False)
    phone = np.repeat(phone, 2, axis=0)[:MAX_FRAMES]
    n = min(phone.shape[0], len(audio) // hop)
    pitch = pitchf = None
    if entry.f0 is not None and entry.f0nsf is not None:
        pitch_np = np.load(entry.f0, allow_pickle=False)
        pitchf_np = np.load(entry.f0nsf, allow_pickle=False)
        n = min(n, len(pitch_np), len(pitchf_np))
        pitch = torch.from_numpy(np.asarray(pitch_np[:n], dtype=np.int64))
        pitchf = torch.from_numpy(np.asarray(pitchf_np[:n], dtype=np.float32))
    wave = torch.from_numpy(np.ascontiguousarray(audio[: n * hop + (cfg.data.filter_length - hop)]))
    spec = spectrogram(wave[None], cfg.data)[0]
    n = min(n, spec.shape[-1])
    spec = spec[:, :n].contiguous()
    wave = wave[: n * hop][None].contiguous()
    phone_t = torch.from_numpy(np.ascontiguousarray(phone[:n]))
    if pitch is not None and pitchf is not None:
        pitch, pitchf = pitch[:n].contiguous(), pitchf[:n].contiguous()
    return Sample(spec, wave, phone_t, pitch, pitchf, entry.speaker)


class SegmentDataset(Dataset[Sample]):
    """Segments of a filelist. `in_memory`: loaded once (by `preload`) and kept on `device`."""

    def __init__(
        self,
        entries: Sequence[FilelistEntry],
        cfg: RVCConfig,
        in_memory: bool = True,
        device: torch.device | None = None,
    ) -> None:
        self.cfg = cfg
        self.entries = list(entries)
        self.lengths = [wav_frames(str(e.gt_wav), cfg.data.hop_length) for e in self.entries]
        self.in_memory = in_memory
        self.device = device or torch.device("cpu")
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Sample:
        if self.in_memory:
            s = self._cache.get(i)
            if s is None:
                s = load_sample(self.entries[i], self.cfg).to(self.device)
                self._cache[i] = s
            return s
        return load_sample(self.entries[i], self.cfg)

    def preload(self) -> int:
        """Load every segment into memory (no-op when streaming); returns bytes held."""
        if not self.in_memory:
            return 0
        for i in range(len(self)):
            self[i]
        return sum(s.nbytes() for s in self._cache.values())


def estimate_sample_bytes(cfg: RVCConfig, frames: int) -> int:
    """Bytes one loaded segment of `frames` frames takes (spec + wave + features + pitch)."""
    per_frame = cfg.data.spec_channels + cfg.data.hop_length + cfg.content_dim + 3
    return 4 * per_frame * frames


def collate(samples: Sequence[Sample]) -> Batch:
    """Zero-pad samples into a `Batch`, longest spectrogram first (as the reference)."""
    order = sorted(range(len(samples)), key=lambda i: -samples[i].spec.shape[-1])
    samples = [samples[i] for i in order]
    b = len(samples)
    ref = samples[0]
    dev = ref.spec.device
    t_max = max(s.spec.shape[-1] for s in samples)
    w_max = max(s.wave.shape[-1] for s in samples)
    p_max = max(s.phone.shape[0] for s in samples)
    spec = torch.zeros(b, ref.spec.shape[0], t_max, device=dev)
    wave = torch.zeros(b, 1, w_max, device=dev)
    phone = torch.zeros(b, p_max, ref.phone.shape[1], device=dev)
    use_f0 = ref.pitch is not None
    pitch = torch.zeros(b, p_max, dtype=torch.long, device=dev) if use_f0 else None
    pitchf = torch.zeros(b, p_max, device=dev) if use_f0 else None
    spec_l = torch.zeros(b, dtype=torch.long)
    wave_l = torch.zeros(b, dtype=torch.long)
    phone_l = torch.zeros(b, dtype=torch.long)
    sid = torch.zeros(b, dtype=torch.long)
    for i, s in enumerate(samples):
        spec[i, :, : s.spec.shape[-1]] = s.spec
        wave[i, :, : s.wave.shape[-1]] = s.wave
        phone[i, : s.phone.shape[0]] = s.phone
        if pitch is not None and pitchf is not None:
            if s.pitch is None or s.pitchf is None:
                raise ValueError("collate: a batch mixes segments with and without pitch")
            pitch[i, : s.pitch.shape[0]] = s.pitch
            pitchf[i, : s.pitchf.shape[0]] = s.pitchf
        spec_l[i], wave_l[i], phone_l[i], sid[i] = s.spec.shape[-1], s.wave.shape[-1], s.phone.shape[0], s.sid
    return Batch(phone, phone_l.to(dev), pitch, pitchf, spec, spec_l.to(dev), wave, wave_l.to(dev), sid.to(dev))


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length for DDP: every rank gets the same number of full batches.

    Segments are grouped into buckets `(b[i], b[i+1]]` by frames; each bucket is padded (by repeating
    its own items) to a multiple of `batch_size * num_replicas`, shuffled per epoch with `seed + epoch`,
    split between ranks, cut into batches, and the batches shuffled. Segments outside the boundaries are
    left out (`dropped`).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        boundaries: Sequence[int] = BUCKET_BOUNDARIES,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        buckets: list[list[int]] = [[] for _ in range(len(boundaries) - 1)]
        self.dropped: list[int] = []
        for i, n in enumerate(lengths):
            k = next((j for j in range(len(boundaries) - 1) if boundaries[j] < n <= boundaries[j + 1]), -1)
            (buckets[k] if k >= 0 else self.dropped).append(i)
        self.buckets = [b for b in buckets if b]
        if not self.buckets:
            raise UserInputError(
                f"no training segment is between {boundaries[0] / 100:.2f} s and {boundaries[-1] / 100:.1f} s long: "
                "give longer recordings"
            )
        total = batch_size * num_replicas
        self.padded_sizes = [math.ceil(len(b) / total) * total for b in self.buckets]
        self.num_batches = sum(self.padded_sizes) // total

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        batches: list[list[int]] = []
        for bucket, size in zip(self.buckets, self.padded_sizes):
            order = torch.randperm(len(bucket), generator=g).tolist() if self.shuffle else list(range(len(bucket)))
            ids = [bucket[order[i % len(bucket)]] for i in range(size)]
            mine = ids[self.rank :: self.num_replicas]
            batches += [mine[j : j + self.batch_size] for j in range(0, len(mine), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        return iter(batches)


def split_holdout(
    entries: Sequence[FilelistEntry], n: int | None = None, seed: int = 0
) -> tuple[list[FilelistEntry], list[FilelistEntry]]:
    """(training, held-out) entries. Mute entries always train. `n` None: 1 per 10 segments, 1..8, none under 5."""
    segs = [e for e in entries if not e.is_mute]
    if n is None:
        n = 0 if len(segs) < 5 else min(8, max(1, len(segs) // 10))
    n = max(0, min(n, len(segs) - 1))
    rng = np.random.default_rng(seed)
    held_ids = {str(segs[i].gt_wav) for i in rng.choice(len(segs), size=n, replace=False)} if n else set()
    train = [e for e in entries if str(e.gt_wav) not in held_ids]
    held = sorted((e for e in segs if str(e.gt_wav) in held_ids), key=lambda e: str(e.gt_wav))
    return train, held
