"""The one place that spells the experiment folder's layout (the reference RVC names).

<root>/
  0_gt_wavs/<i>_<j>.wav        segments at the training rate (16-bit PCM)
  1_16k_wavs/<i>_<j>.wav       the same segments at 16 kHz
  2a_f0/<i>_<j>.wav.npy        coarse pitch, int 1..255, one value per 10 ms frame
  2b-f0nsf/<i>_<j>.wav.npy     pitch in Hz, float32
  3_feature256|768/<i>_<j>.npy HuBERT features, float32 [frames, 256|768], 50 frames/s
  mute/                        the silence entries (computed at run time)
  filelist.txt                 gt_wav|feature|f0|f0nsf|speaker
  config.json                  the training config in the reference JSON layout
  G_<step>.pth, D_<step>.pth   training checkpoints
  tensorboard/                 event files
  reports/                     JSON reports of each stage
  train.log                    the run's log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infer.lib.config import CONTENT_DIMS, VERSIONS


@dataclass(frozen=True)
class ExperimentLayout:
    """Paths inside one experiment folder; `version` picks the feature folder width."""

    root: Path
    version: str = "v2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")

    @property
    def gt_wavs_dir(self) -> Path:
        return self.root / "0_gt_wavs"

    @property
    def wavs16k_dir(self) -> Path:
        return self.root / "1_16k_wavs"

    @property
    def f0_dir(self) -> Path:
        return self.root / "2a_f0"

    @property
    def f0nsf_dir(self) -> Path:
        return self.root / "2b-f0nsf"

    @property
    def feature_dir(self) -> Path:
        return self.root / f"3_feature{CONTENT_DIMS[self.version]}"

    @property
    def mute_dir(self) -> Path:
        return self.root / "mute"

    @property
    def filelist_path(self) -> Path:
        return self.root / "filelist.txt"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root

    def g_checkpoint(self, step: int) -> Path:
        return self.checkpoint_dir / f"G_{step}.pth"

    def d_checkpoint(self, step: int) -> Path:
        return self.checkpoint_dir / f"D_{step}.pth"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "tensorboard"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def log_path(self) -> Path:
        return self.root / "train.log"

    def index_path(self, name: str, n_ivf: int) -> Path:
        """The reference index file name: `added_IVF<n>_Flat_nprobe_1_<name>_<version>.index`."""
        return self.root / f"added_IVF{n_ivf}_Flat_nprobe_1_{name}_{self.version}.index"

    # Per-segment file names: features drop ".wav", pitch keeps it (`<stem>.wav.npy`), as the reference.
    def feature_file(self, wav_name: str) -> Path:
        return self.feature_dir / f"{Path(wav_name).stem}.npy"

    def f0_file(self, wav_name: str) -> Path:
        return self.f0_dir / f"{wav_name}.npy"

    def f0nsf_file(self, wav_name: str) -> Path:
        return self.f0nsf_dir / f"{wav_name}.npy"

    def make_dirs(self) -> None:
        """Create the folders the stages write into."""
        for d in (self.gt_wavs_dir, self.wavs16k_dir, self.f0_dir, self.f0nsf_dir, self.feature_dir, self.reports_dir):
            d.mkdir(parents=True, exist_ok=True)
