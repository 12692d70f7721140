"""Fetching model weights safely: `WeightDownloader(settings).fetch(names)`.

Makes sure the named weights (`infer.lib.weights`) are present and intact under the weights folder
and returns their paths. It fetches only what is missing or damaged, several files in parallel, with a
progress bar in a terminal and log lines otherwise; a download is resumable (HTTP Range), retried
with backoff (`infer.lib.http_get`), written to a hidden partial file and renamed into place only
once its size and sha256 check out. A cached file is checked cheaply on every use (its size; its
sha256 once, remembered in a hidden stamp file keyed by size and mtime). A per-file lock lets several
jobs share one weights folder. `RVC_OFFLINE=1` never touches the network: what is missing is
reported, with how to get it. `RVC_WEIGHTS_BASE_URL` replaces the public sources with a mirror that
keeps the same relative paths (`<base>/pretrained_v2/f0G40k.pth`), e.g. Replicate's CDN or a private
bucket.

A stand-in folder (`python -m tools.make_standin_weights`) carries `STANDIN_MANIFEST` (listing the
files it wrote with their own size and sha256), so its files are verified against that list instead
of the published checksums (`infer.lib.weight_files`), and a loud warning is logged.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infer.lib.errors import ConfigError, UserInputError, WeightsError
from infer.lib.fileio import sha256_file
from infer.lib.http_get import (
    RetriesExhausted,
    RetryPolicy,
    TransientError,
    body_chunks,
    call_with_retries,
    content_range,
    status_error,
)
from infer.lib.log import get_logger, is_terminal
from infer.lib.urls import redact_text, redact_url
from infer.lib.weight_files import Expected, file_problem, hidden_path, read_standin_listing, stamp_path, write_stamp
from infer.lib.weights import BUNDLES, DEFAULT_WEIGHTS_DIR, MANIFEST, WeightBundle, WeightFile

_log = get_logger("weights")

_CHUNK = 1 << 16

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
    `max_workers`: parallel downloads. `retries`: attempts per URL after a transient failure.
    `backoff_s`: first retry delay (doubles each time, see `retry_policy`). `timeout_s`: connect/read timeout.
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

    @property
    def retry_policy(self) -> RetryPolicy:
        """`retries` and `backoff_s`, with jitter (jobs sharing a mirror spread their retries), waits
        of at most a minute (a longer `Retry-After` included)."""
        return RetryPolicy(self.retries, self.backoff_s, max_backoff_s=60.0, jitter=True)

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
        self._standin = read_standin_listing(self.weights_dir)

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

    def _expect(self, name: str) -> Expected:
        if name in self._standin:
            return self._standin[name]
        f = self.manifest[name]
        return Expected(f.size, f.sha256)

    # -- checking ----------------------------------------------------------------------------------

    def missing(self, names: Sequence[str]) -> dict[str, str]:
        """{file name: problem} for the files of `names` that are missing or damaged; no network."""
        out = {}
        for name in self._expand(names):
            problem = file_problem(self.weights_dir / name, self._expect(name))
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
            problems = {f: p for f in files if (p := file_problem(self.weights_dir / f, self._expect(f)))}
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
        if file_problem(dest, expect) is None:  # the common case: no lock needed (works on read-only folders)
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(hidden_path(dest, ".lock")), thread_local=False)
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
            problem = file_problem(dest, expect)  # again: another job may have fetched it meanwhile
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
    def _salvage(dest: Path, expect: Expected) -> None:
        """A damaged cached file: keep a truncated one as the partial download (resumed and then
        verified), delete anything else."""
        part = hidden_path(dest, ".part")
        size = dest.stat().st_size if dest.is_file() else None
        if size is not None and expect.size is not None and 0 < size < expect.size and not part.exists():
            os.replace(dest, part)
        else:
            dest.unlink(missing_ok=True)
        stamp_path(dest).unlink(missing_ok=True)

    def _download(self, name: str, dest: Path, expect: Expected) -> None:
        """Download `name` into `dest` (caller holds the lock), trying each URL in turn. A download
        whose size or sha256 is wrong is fetched once more from scratch, then refused."""
        part = hidden_path(dest, ".part")
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
                except RetriesExhausted as e:
                    failures.append(redact_text(f"{redact_url(url)}: {e.last}"))
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
    def _check_part(part: Path, expect: Expected, total: int | None) -> str | None:
        """What is wrong with a finished download (`total`: the size the server announced)."""
        if not part.is_file():
            return "no data"
        want = expect if expect.size is not None else Expected(total, expect.sha256)
        return want.mismatch(part, part.stat().st_size, sha256_file)

    def _install(self, name: str, part: Path, dest: Path) -> None:
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
        expect = self._expect(name)
        sha = expect.sha256 or sha256_file(dest)
        write_stamp(dest, sha)
        if expect.sha256 is None:
            _log.info("%s: no published checksum; downloaded file has sha256 %s", name, sha)
        with self.stats.lock:
            self.stats.downloaded.append(name)
        _log.info("%s: ready (%d bytes)", name, dest.stat().st_size)

    def _get(self, name: str, url: str, part: Path, expect: Expected) -> int | None:
        """Download `url` into `part`, resuming from its current size, retrying transient failures
        (`settings.retry_policy`). Returns the total size the server announced (None if unknown)."""
        total, _ = call_with_retries(
            lambda: self._get_once(name, url, part, expect), self.settings.retry_policy, name, log=_log
        )
        return total

    def _get_once(self, name: str, url: str, part: Path, expect: Expected) -> int | None:
        """One GET of `url` into `part` (from byte `offset` with a Range request when part exists)."""
        import requests

        offset = part.stat().st_size if part.exists() else 0
        if expect.size is not None and offset > expect.size:
            part.unlink()
            offset = 0
        try:
            resp = requests.get(url, headers=self._headers(url, offset), stream=True, timeout=self.settings.timeout_s)
        except requests.RequestException as e:
            raise TransientError(f"{type(e).__name__}: {e}") from e
        with resp:
            start, total = self._check_response(name, url, resp, part, offset)
            if start is None:
                return total  # 416: the partial file already holds every byte
            if expect.size is not None and total is not None and total != expect.size:
                _log.warning(
                    "%s: %s announces %d bytes, the manifest says %d", name, redact_url(url), total, expect.size
                )
            self._receive(name, resp, part, start, total)
            return total

    def _headers(self, url: str, offset: int) -> dict[str, str]:
        headers = {"User-Agent": "rvc-trainer-weights/1", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        if self.settings.hf_token and urllib.parse.urlsplit(url).hostname == "huggingface.co":
            headers["Authorization"] = f"Bearer {self.settings.hf_token}"  # requests drops it on redirects
        return headers

    @staticmethod
    def _check_response(name: str, url: str, resp: Any, part: Path, offset: int) -> tuple[int | None, int | None]:
        """(byte the body starts at, total size announced) of a response to a GET from `offset`;
        start None when a 416 says the partial file is complete. Raises for anything else."""
        code = resp.status_code
        if code in (404, 410):
            raise _NotFoundError(url)
        if code == 416 and offset:
            # Nothing more to send: the partial is complete (checked by the caller) or bad.
            total = content_range(resp.headers.get("Content-Range"))[1]
            if total is not None and total == offset:
                return None, total
            part.unlink(missing_ok=True)
            raise TransientError("server refused the resume range; starting over")
        transient = status_error(code, f"from {redact_url(url)}", resp.headers)
        if transient is not None:
            raise transient
        if code not in (200, 206):
            raise WeightsError(f"{name}: HTTP {code} from {redact_url(url)}; cannot fetch it")
        if code == 200:
            length = resp.headers.get("Content-Length")
            return 0, int(length) if length and length.isdigit() else None
        start, total = content_range(resp.headers.get("Content-Range"))
        if start != offset:
            part.unlink(missing_ok=True)
            raise TransientError(f"server resumed at byte {start}, asked {offset}; starting over")
        return start, total

    def _receive(self, name: str, resp: Any, part: Path, offset: int, total: int | None) -> None:
        """Write the body into `part` (appended from `offset`, or from scratch when 0)."""
        import http.client

        import requests
        import urllib3

        if offset:
            _log.info("%s: resuming at %.1f MB", name, offset / 1e6)
        bar = _Progress(name, total, offset)
        got = offset
        try:
            with open(part, "ab" if offset else "wb") as f:
                for chunk in body_chunks(resp, _CHUNK):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
                    with self.stats.lock:
                        self.stats.bytes += len(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
            raise TransientError(f"connection lost at byte {got}: {type(e).__name__}") from e
        finally:
            bar.close()
        if total is not None and got < total:
            raise TransientError(f"connection closed at byte {got} of {total}")
