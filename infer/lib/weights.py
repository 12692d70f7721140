"""Model weights: what the pipeline needs, where it comes from, and fetching it safely.

Weights live under `RVC_WEIGHTS_DIR` (default `<repo>/assets`) in the reference RVC layout; a weight's
*name* is its path relative to that folder:

    hubert/hubert_base.pt                      HuBERT (fairseq checkpoint), always needed
    rmvpe/rmvpe.pt                             RMVPE pitch network, for f0 method rmvpe / rmvpe_gpu
    pretrained/{,f0}{G,D}{32,40,48}k.pth       v1 pretrained generator / discriminator
    pretrained_v2/{,f0}{G,D}{32,40,48}k.pth    v2 pretrained generator / discriminator
    mossformer2/MossFormer2_SE_48K             clearvoice's checkpoint folder (a bundle of 2 files)

`MANIFEST` lists every file with its public source (the Hugging Face hub), its size in bytes and
its sha256 where a published value was found (see the comments beside each entry for the source).

`WeightDownloader(settings).fetch(names)` makes sure the named weights are present and intact and
returns their paths. It fetches only what is missing or damaged, several files in parallel, with a
progress bar in a terminal and log lines otherwise; a download is resumable (HTTP Range), retried
with backoff, written to a hidden partial file and renamed into place only once its size and
sha256 check out. A cached file is checked cheaply on every use (its size; its sha256 once,
remembered in a hidden stamp file keyed by size and mtime). A per-file lock lets several jobs share
one weights folder. `RVC_OFFLINE=1` never touches the network: what is missing is reported, with
how to get it. `RVC_WEIGHTS_BASE_URL` replaces the public sources with a mirror that keeps the same
relative paths (`<base>/pretrained_v2/f0G40k.pth`), e.g. Replicate's CDN or a private bucket.

Stand-in weights (`python -m tools.make_standin_weights`) are never used implicitly: they are only
found when `RVC_WEIGHTS_DIR` points at a folder that tool wrote. Such a folder carries
`STANDIN_MANIFEST` (listing the files it wrote with their own size and sha256), so its files are
verified against that list instead of the published checksums, and a loud warning is logged.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infer.lib.config import SAMPLE_RATES, VERSIONS
from infer.lib.errors import ConfigError, UserInputError, WeightsError
from infer.lib.fileio import atomic_write_text, sha256_file
from infer.lib.log import get_logger, is_terminal
from infer.lib.urls import redact_text, redact_url

_log = get_logger("weights")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "assets"

RVC_HF = "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main"
MOSSFORMER2_HF = "https://huggingface.co/alibabasglab/MossFormer2_SE_48K/resolve/main"

HUBERT = "hubert/hubert_base.pt"
RMVPE = "rmvpe/rmvpe.pt"
MOSSFORMER2 = "mossformer2/MossFormer2_SE_48K"

#: File written by `tools.make_standin_weights` at the top of a stand-in weights folder.
STANDIN_MANIFEST = "STANDIN_WEIGHTS.json"

#: f0 methods whose extractor needs `rmvpe/rmvpe.pt` (the others bring their own weights or none).
RMVPE_METHODS: tuple[str, ...] = ("rmvpe", "rmvpe_gpu")

_CHUNK = 1 << 16
_STAMP_SUFFIX = ".verified.json"


@dataclass(frozen=True)
class WeightFile:
    """One file of the manifest.

    `name`: path relative to the weights folder (also its path under `RVC_WEIGHTS_BASE_URL`).
    `urls`: public sources, tried in order. `size`: bytes, None where no published value was found.
    `sha256`: lowercase hex, None where no published value was found (then size alone is checked).
    `source`: where `size`/`sha256` come from, for humans.
    """

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or ".." in Path(self.name).parts:
            raise ConfigError(f"weight name must be a relative path inside the weights folder, got {self.name!r}")
        if not self.urls:
            raise ConfigError(f"{self.name}: at least one URL is needed")
        if self.size is not None and self.size < 0:
            raise ConfigError(f"{self.name}: size must be >= 0")
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(f"{self.name}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class WeightBundle:
    """A folder of files fetched together (clearvoice's checkpoint folder); `name` is the folder."""

    name: str
    files: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# The manifest. Sizes and sha256 are the Git LFS pointers (`oid sha256:...`, `size ...`) of the files
# at the head of https://huggingface.co/lj1995/VoiceConversionWebUI, read from the hub's commit pages:
#   a74b2b7 "Upload 12 files" (pretrained/ v1, Mar 2023; the D files were not changed since),
#   b9addeb "Upload 12 files" (pretrained/ v1 G files re-uploaded, May 2023),
#   fb2b2c1 "Upload 3 files", 0e58572 "Upload D40k.pth", b234b67 "Upload 2 files" (pretrained_v2 40k),
#   0e0e59b "Upload 8 files", fd2c41c "Upload 4 files" (pretrained_v2 32k/48k, Jun 2023).
# Values after b9addeb/b234b67 were cross-checked against the hub mirror memescreamer/VoiceConversionWebUI
# ("Mirror lj1995/VoiceConversionWebUI @ b2c8cae96e3b") and AnhP/Vietnamese-RVC-Project.
# Unknown (None): the current v1 f0G{32,40,48}k.pth checksums and exact sizes (re-uploaded in b9addeb;
# no published pointer found; the hub lists them at about 72.8, 72.9 and 73.0 MB), and the MossFormer2
# checkpoint (no published pointer found for alibabasglab/MossFormer2_SE_48K; about 221 MB).
# --------------------------------------------------------------------------------------------------

_D_V1 = 109_978_943  # every v1 discriminator file (same network, fp32)
_D_V2 = 142_875_703  # every v2 discriminator file

_RVC_FILES: tuple[tuple[str, str, int | None, str | None, str], ...] = (
    # (name, path on the hub, size, sha256, source)
    (
        HUBERT,
        "hubert_base.pt",
        189_507_909,
        "f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
        "hub LFS pointer (mirror memescreamer/VoiceConversionWebUI 7b1d2ba; also ddPn08/rvc-webui-models)",
    ),
    (
        RMVPE,
        "rmvpe.pt",
        181_184_272,
        "6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193",
        "hub LFS pointer (duplicate nevreal/RVC_stuff rmvpe.pt; size from a published manifest)",
    ),
    # v1
    ("pretrained/D32k.pth", "pretrained/D32k.pth", _D_V1,
     "2ab20645829460fdad0d3c44254f1ab53c32cae50c22a66c926ae5aa30abda6f", "lj1995 a74b2b7"),
    ("pretrained/D40k.pth", "pretrained/D40k.pth", _D_V1,
     "547f66dbbcd9023b9051ed244d12ab043ba8a4e854b154cc28761ac7c002909b", "lj1995 a74b2b7"),
    ("pretrained/D48k.pth", "pretrained/D48k.pth", _D_V1,
     "8cc013fa60ed9c3f902f5bd99f48c7e3b9352d763d4d3cd6bc241c37b0bfd9ad", "lj1995 a74b2b7"),
    ("pretrained/f0D32k.pth", "pretrained/f0D32k.pth", _D_V1,
     "294db3087236e2c75260d6179056791c9231245daf5d0485545d9e54c4057c77", "mirror memescreamer 1bb20ac"),
    ("pretrained/f0D40k.pth", "pretrained/f0D40k.pth", _D_V1,
     "7d4f5a441594b470d67579958b2fd4c6b992852ded28ff9e72eda67abcebe423", "mirror memescreamer bcb6e04"),
    ("pretrained/f0D48k.pth", "pretrained/f0D48k.pth", _D_V1,
     "1b84c8bf347ad1e539c842e8f2a4c36ecd9e7fb23c16041189e4877e9b07925c", "mirror memescreamer e8a591f"),
    ("pretrained/G32k.pth", "pretrained/G32k.pth", 72_653_893,
     "81817645cde7ed2e2d83f23ef883f33dda564924b497e84d792743912eca4c23", "mirror memescreamer e8a591f"),
    ("pretrained/G40k.pth", "pretrained/G40k.pth", 72_763_063,
     "e428573bda1124b0ae0ae843fd8dcded6027d3993444790b3e9b0100938b2113", "mirror memescreamer e8a591f"),
    ("pretrained/G48k.pth", "pretrained/G48k.pth", 72_850_501,
     "3862a67ea6313e8ffefc05cee6bee656ef3e089442e9ecf4a6618d60721f3e95", "mirror memescreamer e8a591f"),
    ("pretrained/f0G32k.pth", "pretrained/f0G32k.pth", None, None, "no published checksum found"),
    ("pretrained/f0G40k.pth", "pretrained/f0G40k.pth", None, None, "no published checksum found"),
    ("pretrained/f0G48k.pth", "pretrained/f0G48k.pth", None, None, "no published checksum found"),
    # v2
    ("pretrained_v2/D32k.pth", "pretrained_v2/D32k.pth", _D_V2,
     "d8043378cc6619083d385f5a045de09b83fb3bf8de45c433ca863b71723ac3ca", "lj1995 fd2c41c"),
    ("pretrained_v2/D40k.pth", "pretrained_v2/D40k.pth", _D_V2,
     "471378e894e7191f89a94eda8288c5947b16bbe0b10c3f1f17efdb7a1d998242", "lj1995 0e58572 (via mirrors)"),
    ("pretrained_v2/D48k.pth", "pretrained_v2/D48k.pth", _D_V2,
     "db01094a93c09868a278e03dafe8bb781bfcc1a5ba8df168c948bf9168c84d82", "lj1995 fd2c41c"),
    ("pretrained_v2/f0D32k.pth", "pretrained_v2/f0D32k.pth", _D_V2,
     "bd7134e7793674c85474d5145d2d982e3c5d8124fc7bb6c20f710ed65808fa8a", "lj1995 0e0e59b"),
    ("pretrained_v2/f0D40k.pth", "pretrained_v2/f0D40k.pth", _D_V2,
     "6b6ab091e70801b28e3f41f335f2fc5f3f35c75b39ae2628d419644ec2b0fa09", "lj1995 b234b67"),
    ("pretrained_v2/f0D48k.pth", "pretrained_v2/f0D48k.pth", _D_V2,
     "2269b73c7a4cf34da09aea99274dabf99b2ddb8a42cbfb065fb3c0aa9a2fc748", "lj1995 0e0e59b"),
    ("pretrained_v2/G32k.pth", "pretrained_v2/G32k.pth", 73_811_639,
     "869b26a47f75168d6126f64ac39e6de5247017a8658cfd68aca600f7323efb9f", "lj1995 fd2c41c"),
    ("pretrained_v2/G40k.pth", "pretrained_v2/G40k.pth", 72_959_671,
     "a3843da7fde33db1dab176146c70d6c2df06eafe9457f4e3aa10024e9c6a4b69", "lj1995 fb2b2c1"),
    ("pretrained_v2/G48k.pth", "pretrained_v2/G48k.pth", 75_318_967,
     "2e2b1581a436d07a76b10b9d38765f64aa02836dc65c7dee1ce4140c11ea158b", "lj1995 fd2c41c"),
    ("pretrained_v2/f0G32k.pth", "pretrained_v2/f0G32k.pth", 73_950_049,
     "2332611297b8d88c7436de8f17ef5f07a2119353e962cd93cda5806d59a1133d", "lj1995 0e0e59b"),
    ("pretrained_v2/f0G40k.pth", "pretrained_v2/f0G40k.pth", 73_106_273,
     "3b2c44035e782c4b14ddc0bede9e2f4a724d025cd073f736d4f43708453adfcb", "lj1995 b234b67"),
    ("pretrained_v2/f0G48k.pth", "pretrained_v2/f0G48k.pth", 75_465_569,
     "b5d51f589cc3632d4eae36a315b4179397695042edc01d15312e1bddc2b764a4", "lj1995 0e0e59b"),
)  # fmt: skip


def _build_manifest() -> dict[str, WeightFile]:
    files = [
        WeightFile(name, (f"{RVC_HF}/{hub_path}",), size, sha, source)
        for name, hub_path, size, sha, source in _RVC_FILES
    ]
    # clearvoice reads `last_best_checkpoint` (a one-line text file naming the checkpoint) and then the
    # checkpoint it names; the hub repository holds both (as do MossFormer2_SS_16K and the others).
    files += [
        WeightFile(
            f"{MOSSFORMER2}/last_best_checkpoint",
            (f"{MOSSFORMER2_HF}/last_best_checkpoint",),
            None,
            None,
            "no published checksum found (a one-line text file)",
        ),
        WeightFile(
            f"{MOSSFORMER2}/last_best_checkpoint.pt",
            (f"{MOSSFORMER2_HF}/last_best_checkpoint.pt",),
            None,
            None,
            "no published checksum found (about 221 MB)",
        ),
    ]
    return {f.name: f for f in files}


MANIFEST: dict[str, WeightFile] = _build_manifest()
BUNDLES: dict[str, WeightBundle] = {
    MOSSFORMER2: WeightBundle(
        MOSSFORMER2, (f"{MOSSFORMER2}/last_best_checkpoint", f"{MOSSFORMER2}/last_best_checkpoint.pt")
    )
}


# --------------------------------------------------------------------------------------------------
# What a job needs
# --------------------------------------------------------------------------------------------------


def pretrained_names(version: str, sample_rate: str, use_f0: bool) -> tuple[str, str]:
    """The (generator, discriminator) names of the published pretrained pair, e.g.
    `("pretrained_v2/f0G40k.pth", "pretrained_v2/f0D40k.pth")` for ("v2", "40k", True)."""
    if version not in VERSIONS:
        raise UserInputError(f"version must be one of {list(VERSIONS)}, got {version!r}")
    if sample_rate not in SAMPLE_RATES:
        raise UserInputError(f"sample rate must be one of {list(SAMPLE_RATES)}, got {sample_rate!r}")
    folder = "pretrained" if version == "v1" else "pretrained_v2"
    prefix = "f0" if use_f0 else ""
    return f"{folder}/{prefix}G{sample_rate}.pth", f"{folder}/{prefix}D{sample_rate}.pth"


def required_weights(version: str, sample_rate: str, use_f0: bool, f0method: str | None, enhance: bool) -> list[str]:
    """The names a training job needs: HuBERT always, the pretrained G/D pair, RMVPE when the pitch
    method is rmvpe/rmvpe_gpu (and the model uses pitch), MossFormer2 when enhancement is on."""
    g, d = pretrained_names(version, sample_rate, use_f0)
    names = [HUBERT, g, d]
    if use_f0 and f0method in RMVPE_METHODS:
        names.append(RMVPE)
    if enhance:
        names.append(MOSSFORMER2)
    return names


def base_weights() -> list[str]:
    """What `predict.py`'s setup() fetches before any job: HuBERT, RMVPE and the pretrained pair of the
    default variant (`infer.lib.options.DEFAULTS`: v2 48k with pitch)."""
    from infer.lib.options import DEFAULTS

    return [HUBERT, RMVPE, *pretrained_names(DEFAULTS["version"], DEFAULTS["sample_rate"], True)]


def all_weights() -> list[str]:
    """Every name the manifest knows (bundles by their folder name)."""
    in_bundle = {f for b in BUNDLES.values() for f in b.files}
    return [n for n in MANIFEST if n not in in_bundle] + list(BUNDLES)


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class WeightsSettings:
    """Where weights live and how they are fetched.

    `weights_dir`: the weights folder. `base_url`: mirror replacing the public sources (files keep their
    relative paths under it), None for the public sources. `offline`: never use the network.
    `max_workers`: parallel downloads. `retries`: attempts per URL after a network error.
    `backoff_s`: first retry delay (doubles each time). `timeout_s`: connect/read timeout.
    `lock_timeout_s`: how long to wait for another job fetching the same file.
    `hf_token`: sent to huggingface.co only (from `HF_TOKEN`; the public files need none).
    """

    weights_dir: Path = DEFAULT_WEIGHTS_DIR
    base_url: str | None = None
    offline: bool = False
    max_workers: int = 4
    retries: int = 5
    backoff_s: float = 1.0
    timeout_s: float = 30.0
    lock_timeout_s: float = 3600.0
    hf_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights_dir", Path(self.weights_dir).expanduser())
        if self.base_url is not None:
            url = self.base_url.strip()
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"RVC_WEIGHTS_BASE_URL must be an http(s) URL, got {redact_url(self.base_url)!r}")
            object.__setattr__(self, "base_url", url.rstrip("/"))
        if self.max_workers < 1:
            raise ConfigError(f"max_workers must be >= 1, got {self.max_workers}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0 or self.timeout_s <= 0 or self.lock_timeout_s < 0:
            raise ConfigError("backoff_s and lock_timeout_s must be >= 0 and timeout_s > 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WeightsSettings:
        """Read `RVC_WEIGHTS_DIR`, `RVC_WEIGHTS_BASE_URL`, `RVC_OFFLINE` (1/true/yes or 0/false/no) and
        `HF_TOKEN`; keyword `overrides` win."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        if env.get("RVC_WEIGHTS_DIR"):
            kwargs["weights_dir"] = Path(env["RVC_WEIGHTS_DIR"])
        if env.get("RVC_WEIGHTS_BASE_URL"):
            kwargs["base_url"] = env["RVC_WEIGHTS_BASE_URL"]
        offline = env.get("RVC_OFFLINE", "").strip().lower()
        if offline not in _TRUE | _FALSE:
            raise ConfigError(f"RVC_OFFLINE must be 1 or 0 (true/false, yes/no), got {env['RVC_OFFLINE']!r}")
        kwargs["offline"] = offline in _TRUE
        if env.get("HF_TOKEN"):
            kwargs["hf_token"] = env["HF_TOKEN"]
        kwargs.update(overrides)
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------------
# Verification helpers
# --------------------------------------------------------------------------------------------------


def _hidden(path: Path, suffix: str) -> Path:
    """A hidden companion file beside `path` (listing code skips names starting with '.')."""
    return path.with_name(f".{path.name}{suffix}")


def _stamp_path(path: Path) -> Path:
    return _hidden(path, _STAMP_SUFFIX)


def _read_stamp(path: Path, st: os.stat_result) -> str | None:
    """The sha256 remembered for `path` if the stamp matches its current size and mtime."""
    try:
        data = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return None
    if data.get("size") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns:
        sha = data.get("sha256")
        return sha if isinstance(sha, str) else None
    return None


def _write_stamp(path: Path, sha: str) -> None:
    st = path.stat()
    try:
        atomic_write_text(
            _stamp_path(path), json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha})
        )
    except OSError as e:  # a read-only weights folder (baked into an image) still works
        _log.debug("could not write the stamp for %s: %s", path, e)


def file_sha256(path: Path) -> str:
    """sha256 of `path`, from its stamp when size and mtime are unchanged, else hashed (and stamped)."""
    st = path.stat()
    sha = _read_stamp(path, st)
    if sha is None:
        sha = sha256_file(path)
        _write_stamp(path, sha)
    return sha


@dataclass(frozen=True)
class _Expect:
    size: int | None
    sha256: str | None


def _problem(path: Path, expect: _Expect) -> str | None:
    """None when `path` is present and matches `expect`, else what is wrong (for messages)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if not path.is_file():
        return "not a file"
    if expect.size is not None and st.st_size != expect.size:
        return f"size {st.st_size} bytes, expected {expect.size} (truncated or corrupt)"
    if expect.sha256 is not None:
        sha = file_sha256(path)
        if sha != expect.sha256:
            return f"sha256 {sha}, expected {expect.sha256} (corrupt)"
    return None


# --------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------


class _Progress:
    """Bytes of one download: a tqdm bar in a terminal, else a log line every 10 % (or 30 s)."""

    def __init__(self, name: str, total: int | None, initial: int) -> None:
        self.name, self.total, self.done, self.initial = name, total, initial, initial
        self.start, self.last_log, self.next_pct = time.monotonic(), time.monotonic(), 10.0
        self._bar = None
        if is_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        pct = 100.0 * self.done / self.total if self.total else None
        if (pct is not None and pct >= self.next_pct) or now - self.last_log >= 30.0:
            rate = (self.done - self.initial) / max(now - self.start, 1e-6) / 1e6
            total = f"/{self.total / 1e6:.1f}" if self.total else ""
            _log.info("%s: %.1f%s MB (%.1f MB/s)", self.name, self.done / 1e6, total, rate)
            self.last_log = now
            while pct is not None and self.next_pct <= pct:
                self.next_pct += 10.0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------------------------------
# The downloader
# --------------------------------------------------------------------------------------------------


class _RetryableError(Exception):
    """A transient failure (dropped connection, 5xx, timeout): retry the same URL, resuming."""


class _NotFoundError(Exception):
    """The server answered 404 (or 410): try the next URL, never retry."""


@dataclass
class _FetchStats:
    """What happened while fetching (for logs and tests)."""

    downloaded: list[str] = field(default_factory=list)
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class WeightDownloader:
    """Makes named weights present and intact under `settings.weights_dir`; see the module docstring.

    `manifest` and `bundles` default to the published ones; tests pass their own.
    """

    def __init__(
        self,
        settings: WeightsSettings | None = None,
        manifest: Mapping[str, WeightFile] | None = None,
        bundles: Mapping[str, WeightBundle] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else WeightsSettings.from_env()
        self.manifest = dict(MANIFEST if manifest is None else manifest)
        self.bundles = dict(BUNDLES if bundles is None else bundles)
        self.stats = _FetchStats()
        self._standin = self._read_standin_manifest()

    # -- names and paths ---------------------------------------------------------------------------

    @property
    def weights_dir(self) -> Path:
        return self.settings.weights_dir

    def path(self, name: str) -> Path:
        """Where `name` lives (a folder for a bundle), whether or not it is present."""
        self._files_of(name)
        return self.weights_dir / name

    def _files_of(self, name: str) -> tuple[str, ...]:
        if name in self.bundles:
            return self.bundles[name].files
        if name in self.manifest or name in self._standin:
            return (name,)
        known = ", ".join(sorted(set(self.manifest) | set(self.bundles)))
        raise UserInputError(f"unknown weights {name!r}; known names: {known}")

    def _expand(self, names: Iterable[str]) -> list[str]:
        files: list[str] = []
        for name in names:
            for f in self._files_of(name):
                if f not in files:
                    files.append(f)
        return files

    def urls(self, name: str) -> tuple[str, ...]:
        """The URLs tried for file `name`: the mirror's when `base_url` is set, else the public ones."""
        if self.settings.base_url:
            return (f"{self.settings.base_url}/{name}",)
        return self.manifest[name].urls

    # -- stand-in folders --------------------------------------------------------------------------

    def _read_standin_manifest(self) -> dict[str, _Expect]:
        path = self.weights_dir / STANDIN_MANIFEST
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
            files = {k: _Expect(int(v["size"]), str(v["sha256"])) for k, v in data["files"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{path} is unreadable ({e}); write the stand-in folder again") from e
        return files

    def _expect(self, name: str) -> _Expect:
        if name in self._standin:
            return self._standin[name]
        f = self.manifest[name]
        return _Expect(f.size, f.sha256)

    # -- checking ----------------------------------------------------------------------------------

    def missing(self, names: Sequence[str]) -> dict[str, str]:
        """{file name: problem} for the files of `names` that are missing or damaged; no network."""
        out = {}
        for name in self._expand(names):
            problem = _problem(self.weights_dir / name, self._expect(name))
            if problem is not None:
                out[name] = problem
        return out

    # -- fetching ----------------------------------------------------------------------------------

    def fetch(self, names: Sequence[str]) -> dict[str, Path]:
        """Make every name in `names` present and verified; return {name: path} (a folder for a bundle).

        Raises `WeightsError` naming every file that could not be made available and why.
        """
        files = self._expand(names)
        standins = [f for f in files if f in self._standin]
        if standins:
            _log.warning("using STAND-IN weights from %s for %s", self.weights_dir, ", ".join(standins))
        if self.settings.offline:
            problems = {f: p for f in files if (p := _problem(self.weights_dir / f, self._expect(f)))}
            if problems:
                raise WeightsError(self._offline_message(problems))
        else:
            self._fetch_files(files)
        out = {name: self.weights_dir / name for name in names}
        return out

    def _offline_message(self, problems: Mapping[str, str]) -> str:
        lines = [f"RVC_OFFLINE=1 and these weights are not usable in {self.weights_dir}:"]
        for name, problem in problems.items():
            hint = " (stand-in file: write it again with `python -m tools.make_standin_weights`)"
            lines.append(f"  {name}: {problem}{hint if name in self._standin else ''}")
        lines.append(
            "Get them with network access: `python -m tools.download_weights --names "
            + " ".join(problems)
            + f" --weights-dir {self.weights_dir}`, or copy the files there from another machine "
            "(same relative paths), or unset RVC_OFFLINE."
        )
        return "\n".join(lines)

    def _fetch_files(self, files: list[str]) -> None:
        errors: dict[str, str] = {}
        if len(files) <= 1 or self.settings.max_workers == 1:
            for f in files:
                try:
                    self._ensure(f)
                except WeightsError as e:
                    errors[f] = str(e)
        else:
            with ThreadPoolExecutor(max_workers=min(self.settings.max_workers, len(files))) as pool:
                futures = {f: pool.submit(self._ensure, f) for f in files}
                for f, fut in futures.items():
                    try:
                        fut.result()
                    except WeightsError as e:
                        errors[f] = str(e)
        if errors:
            if len(errors) == 1:
                raise WeightsError(next(iter(errors.values())))
            raise WeightsError("could not fetch these weights:\n" + "\n".join(f"  {e}" for e in errors.values()))

    def _ensure(self, name: str) -> Path:
        """Make one file present and verified, holding its lock while checking and downloading."""
        from filelock import FileLock, Timeout

        dest = self.weights_dir / name
        expect = self._expect(name)
        if _problem(dest, expect) is None:  # the common case: no lock needed (works on read-only folders)
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(_hidden(dest, ".lock")), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            _log.info("%s: another job is fetching it; waiting for it to finish", name)
            try:
                lock.acquire(timeout=self.settings.lock_timeout_s)
            except Timeout as e:
                raise WeightsError(
                    f"{name}: another job has held {lock.lock_file} for {self.settings.lock_timeout_s:.0f}s; "
                    "if no other job is running, delete that lock file"
                ) from e
        try:
            problem = _problem(dest, expect)  # again: another job may have fetched it meanwhile
            if problem is None:
                return dest
            if name in self._standin:
                raise WeightsError(
                    f"{name}: stand-in file in {self.weights_dir} is {problem}; "
                    "write it again with `python -m tools.make_standin_weights`"
                )
            if problem != "missing":
                _log.warning("%s: cached file is %s: fetching it again", name, problem)
                self._salvage(dest, expect)
            self._download(name, dest, expect)
            return dest
        finally:
            lock.release()

    @staticmethod
    def _salvage(dest: Path, expect: _Expect) -> None:
        """A damaged cached file: keep a truncated one as the partial download (resumed and then
        verified), delete anything else."""
        part = _hidden(dest, ".part")
        size = dest.stat().st_size if dest.is_file() else None
        if size is not None and expect.size is not None and 0 < size < expect.size and not part.exists():
            os.replace(dest, part)
        else:
            dest.unlink(missing_ok=True)
        _stamp_path(dest).unlink(missing_ok=True)

    def _download(self, name: str, dest: Path, expect: _Expect) -> None:
        """Download `name` into `dest` (caller holds the lock), trying each URL in turn. A download
        whose size or sha256 is wrong is fetched once more from scratch, then refused."""
        part = _hidden(dest, ".part")
        urls = self.urls(name)
        not_found: list[str] = []
        failures: list[str] = []
        for url in urls:
            for round_ in (1, 2):
                try:
                    total = self._get(name, url, part, expect)
                except _NotFoundError:
                    not_found.append(redact_url(url))
                    break
                except _RetryableError as e:
                    failures.append(redact_text(f"{redact_url(url)}: {e}"))
                    break
                problem = self._check_part(part, expect, total)
                if problem is None:
                    self._install(name, part, dest)
                    return
                part.unlink(missing_ok=True)
                if round_ == 2:
                    raise WeightsError(
                        f"{name}: downloaded twice from {redact_url(url)} and refused both times: {problem}. "
                        "The source may have changed or the mirror is damaged; "
                        "check RVC_WEIGHTS_BASE_URL or report it."
                    )
                _log.warning("%s: downloaded file has %s: fetching it again from scratch", name, problem)
        if len(not_found) == len(urls):
            where = (
                "RVC_WEIGHTS_BASE_URL is set: the mirror must hold the file at that relative path."
                if self.settings.base_url
                else "The public source may have moved; set RVC_WEIGHTS_BASE_URL to a mirror that has it."
            )
            raise WeightsError(f"{name}: not found (HTTP 404) at {', '.join(not_found)}. {where}")
        detail = "; ".join(failures + [f"{u}: HTTP 404" for u in not_found])
        raise WeightsError(
            f"{name}: download failed after {self.settings.retries + 1} attempts per URL ({detail}). "
            "What was received is kept and resumed next time."
        )

    @staticmethod
    def _check_part(part: Path, expect: _Expect, total: int | None) -> str | None:
        if not part.is_file():
            return "no data"
        size = part.stat().st_size
        want = expect.size if expect.size is not None else total
        if want is not None and size != want:
            return f"size {size} bytes, expected {want}"
        if expect.sha256 is not None:
            sha = sha256_file(part)
            if sha != expect.sha256:
                return f"sha256 {sha}, expected {expect.sha256}"
        return None

    def _install(self, name: str, part: Path, dest: Path) -> None:
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
        expect = self._expect(name)
        sha = expect.sha256 or sha256_file(dest)
        _write_stamp(dest, sha)
        if expect.sha256 is None:
            _log.info("%s: no published checksum; downloaded file has sha256 %s", name, sha)
        with self.stats.lock:
            self.stats.downloaded.append(name)
        _log.info("%s: ready (%d bytes)", name, dest.stat().st_size)

    def _get(self, name: str, url: str, part: Path, expect: _Expect) -> int | None:
        """Download `url` into `part`, resuming from its current size, retrying transient errors with
        exponential backoff. Returns the total size the server announced (None if unknown)."""
        import requests

        attempt = 0
        while True:
            try:
                return self._get_once(name, url, part, expect, requests)
            except _RetryableError as e:
                attempt += 1
                if attempt > self.settings.retries:
                    raise
                delay = self.settings.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
                _log.warning(
                    "%s: %s; retrying in %.1fs (attempt %d of %d)",
                    name,
                    e,
                    delay,
                    attempt + 1,
                    self.settings.retries + 1,
                )
                time.sleep(delay)

    def _get_once(self, name: str, url: str, part: Path, expect: _Expect, requests: Any) -> int | None:
        import http.client

        import urllib3

        offset = part.stat().st_size if part.exists() else 0
        if expect.size is not None and offset > expect.size:
            part.unlink()
            offset = 0
        headers = {"User-Agent": "rvc-trainer-weights/1", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        if self.settings.hf_token and urllib.parse.urlsplit(url).hostname == "huggingface.co":
            headers["Authorization"] = f"Bearer {self.settings.hf_token}"  # requests drops it on redirects
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=self.settings.timeout_s)
        except requests.RequestException as e:
            raise _RetryableError(f"{type(e).__name__}: {e}") from e
        with resp:
            code = resp.status_code
            if code in (404, 410):
                raise _NotFoundError(url)
            if code == 416 and offset:
                # Nothing more to send: the partial is complete (checked by the caller) or bad.
                total = _total_from_content_range(resp.headers.get("Content-Range"))
                if total is not None and total == offset:
                    return total
                part.unlink(missing_ok=True)
                raise _RetryableError("server refused the resume range; starting over")
            if code in (408, 429) or code >= 500:
                raise _RetryableError(f"HTTP {code} from {redact_url(url)}")
            if code not in (200, 206):
                raise WeightsError(f"{name}: HTTP {code} from {redact_url(url)}; cannot fetch it")
            if code == 206:
                start = _start_from_content_range(resp.headers.get("Content-Range"))
                if start != offset:
                    part.unlink(missing_ok=True)
                    raise _RetryableError(f"server resumed at byte {start}, asked {offset}; starting over")
                total = _total_from_content_range(resp.headers.get("Content-Range"))
                mode = "ab"
            else:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                offset, mode = 0, "wb"
            if expect.size is not None and total is not None and total != expect.size:
                _log.warning(
                    "%s: %s announces %d bytes, the manifest says %d", name, redact_url(url), total, expect.size
                )
            if offset:
                _log.info("%s: resuming at %.1f MB", name, offset / 1e6)
            bar = _Progress(name, total, offset)
            got = offset
            try:
                with open(part, mode) as f:
                    for chunk in _body_chunks(resp):
                        f.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                        with self.stats.lock:
                            self.stats.bytes += len(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
                raise _RetryableError(f"connection lost at byte {got}: {type(e).__name__}") from e
            finally:
                bar.close()
            if total is not None and got < total:
                raise _RetryableError(f"connection closed at byte {got} of {total}")
            return total


def _body_chunks(resp: Any) -> Iterator[bytes]:
    """The response body as it arrives. `read1` hands over every byte received before a dropped
    connection (so a resume loses nothing); `iter_content` is the fallback for encoded bodies."""
    raw = resp.raw
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if hasattr(raw, "read1") and encoding in ("", "identity"):
        while chunk := raw.read1(_CHUNK):
            yield chunk
    else:
        for chunk in resp.iter_content(_CHUNK):
            if chunk:
                yield chunk


def _start_from_content_range(value: str | None) -> int | None:
    """`bytes 100-199/200` -> 100."""
    try:
        return int(value.split()[1].split("-")[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        return None


def _total_from_content_range(value: str | None) -> int | None:
    """`bytes 100-199/200` or `bytes */200` -> 200 (None when unknown)."""
    try:
        total = value.rsplit("/", 1)[1]  # type: ignore[union-attr]
        return None if total == "*" else int(total)
    except (AttributeError, IndexError, ValueError):
        return None


def record_standins(weights_dir: str | os.PathLike[str], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Mark files under `weights_dir` as stand-ins: add them (size, sha256) to `STANDIN_MANIFEST` and
    stamp them. Called by `tools.make_standin_weights` after writing; returns the updated file list."""
    weights_dir = Path(weights_dir)
    listing = weights_dir / STANDIN_MANIFEST
    files: dict[str, dict[str, Any]] = {}
    if listing.is_file():
        files = json.loads(listing.read_text()).get("files", {})
    for name in names:
        path = weights_dir / name
        sha = sha256_file(path)
        _write_stamp(path, sha)
        files[name] = {"size": path.stat().st_size, "sha256": sha}
    doc = {
        "warning": "STAND-IN WEIGHTS (deterministic random values): for tests and the offline demo only; "
        "a voice trained from them is not usable",
        "written_by": "python -m tools.make_standin_weights",
        "files": dict(sorted(files.items())),
    }
    atomic_write_text(listing, json.dumps(doc, indent=1) + "\n")
    return files
