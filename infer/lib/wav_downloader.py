"""Downloading the user's recordings from URLs, all of them or none.

`WavDownloader(settings).download(urls, out_dir) -> list[DownloadedFile]`:

- accepts `http://`, `https://` and `data:` URIs; anything else (file://, ftp://, bare paths) is refused;
- refuses hosts that resolve to loopback, private, link-local, multicast or reserved addresses, checked
  after DNS resolution, on every redirect (followed here, http(s) only) and on the connected socket,
  unless `RVC_ALLOW_PRIVATE_URLS=1` (`infer.lib.urls.check_destination`);
- downloads concurrently (a thread pool), streamed to disk in chunks, with connect and read timeouts,
  retrying connection errors, timeouts, truncated transfers and HTTP 408/429/5xx with exponential
  backoff (`infer.lib.http_get`; `Retry-After` honoured up to `max_backoff_s`); other HTTP errors (404,
  403, ...), a refused scheme or host and a redirect to a non-http(s) URL fail at once;
- every file ends: a deadline per file over all its attempts (`deadline_s`, default 15 minutes,
  `RVC_DOWNLOAD_DEADLINE_S`), and a minimum average rate once `min_rate_after_s` have passed;
- a cancel (the `cancel` event, or an exception such as cog's cancel raised in the waiting thread)
  reaches the download threads: their sockets are shut down, nothing is retried, and `download`
  returns (raises `CancelledError`) within a second or so;
- URLs appear in logs and errors only through `infer.lib.urls.redact_url` (no credentials, no query);
- enforces a size limit per file and in total (checked on the bytes actually received, not only on
  `Content-Length`);
- probes and converts every file with ffmpeg to a mono 32-bit float WAV at the source sample rate
  (`infer.lib.audio.convert_to_wav`): any format ffmpeg reads, video included, is accepted; an HTML
  page, an empty or a corrupt file is reported with the reason;
- names outputs `<index>_<safe stem>.wav` (index = position in the URL list, stem = the URL's last
  path segment reduced to `[A-Za-z0-9._-]`), so names are unique and safe whatever the URL says.

If any URL fails, nothing is returned: one `UserInputError` lists every failed URL with its reason.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infer.lib.audio import AudioDecodeError, convert_to_wav, describe_bad_file, probe
from infer.lib.diskspace import disk_full_error, is_disk_full
from infer.lib.errors import CancelledError, ConfigError, UserInputError
from infer.lib.http_get import (
    Cancelled,
    RetriesExhausted,
    RetryPolicy,
    Transfer,
    TransferWatchdog,
    TransientError,
    body_chunks,
    call_with_retries,
    status_error,
)
from infer.lib.log import get_logger
from infer.lib.urls import DestinationRefused, check_destination, check_peer, redact_text, redact_url

if TYPE_CHECKING:
    import requests

_log = get_logger("download")

MiB = 1 << 20
_CHUNK = 256 * 1024
DEADLINE_ENV = "RVC_DOWNLOAD_DEADLINE_S"
_REDIRECTS = (301, 302, 303, 307, 308)
_DISK_FULL = "disk full"  # a URL's outcome when the disk filled up


def _env_deadline() -> float:
    """`$RVC_DOWNLOAD_DEADLINE_S` (seconds per file), default 900."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return 900.0
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{DEADLINE_ENV} must be a number of seconds, got {raw!r}") from None
    if not v > 0:
        raise ConfigError(f"{DEADLINE_ENV} must be > 0, got {raw!r}")
    return v


@dataclass(frozen=True)
class DownloadSettings:
    """Limits and network behaviour of `WavDownloader` (validated on creation)."""

    max_file_bytes: int = 1024 * MiB  # per file, as received
    max_total_bytes: int = 4096 * MiB  # all files together
    connect_timeout_s: float = 15.0
    read_timeout_s: float = 60.0  # longest wait for the next chunk
    retries: int = 3  # extra attempts after the first, for retryable failures
    backoff_s: float = 1.0  # first wait; doubles each retry
    max_backoff_s: float = 30.0
    max_workers: int = 4
    max_urls: int = 1000
    deadline_s: float = dataclasses.field(default_factory=_env_deadline)  # per file, all attempts together
    min_rate_bytes_s: float = 8 * 1024  # slower on average than this (after min_rate_after_s) fails
    min_rate_after_s: float = 60.0
    max_redirects: int = 10
    user_agent: str = "rvc-trainer/0.1 (+https://github.com/RVC-Project)"

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_total_bytes", "max_workers", "max_urls"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"DownloadSettings.{name} must be > 0")
        for name in ("connect_timeout_s", "read_timeout_s", "deadline_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"DownloadSettings.{name} must be > 0")
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("DownloadSettings.retries/backoff_s/max_backoff_s must be >= 0")

    @property
    def retry_policy(self) -> RetryPolicy:
        """`retries`, `backoff_s` and `max_backoff_s` as the shared retry mechanism takes them."""
        return RetryPolicy(self.retries, self.backoff_s, self.max_backoff_s)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DownloadedFile:
    """One URL's result: the converted WAV and what was found out about it."""

    url: str  # redacted (`infer.lib.urls.redact_url`)
    path: Path  # the mono float WAV
    bytes_downloaded: int
    duration_s: float
    sample_rate: int  # the source's rate (the WAV keeps it)
    source_codec: str
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


class _DownloadFailed(Exception):
    """A URL failed for good, for a reason worth showing to the user (transient failures raise
    `TransientError` and are retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def short_url(url: str, limit: int = 120) -> str:
    """`url` for messages: redacted (no user info, query or fragment), data: URIs cut, long ones shortened."""
    return redact_url(url, limit)


class _DiskFull(Exception):
    """Writing the download failed for want of disk space."""


def safe_stem(url: str, limit: int = 60) -> str:
    """A file-name stem from the URL's last path segment: only `[A-Za-z0-9._-]`, never empty or hidden."""
    if url[:5].lower() == "data:":
        return "data"
    path = urllib.parse.urlsplit(url).path
    name = re.split(r"[/\\]", urllib.parse.unquote(path.rsplit("/", 1)[-1]))[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:limit]
    return stem or "audio"


class WavDownloader:
    """Downloads URLs concurrently and converts each to a mono WAV; see the module docstring."""

    def __init__(self, settings: DownloadSettings | None = None) -> None:
        self.settings = settings or DownloadSettings()
        self._lock = threading.Lock()
        self._total = 0
        self._cancel = threading.Event()  # set to stop the running download's threads
        self._watchdog: TransferWatchdog | None = None

    # ---- public -------------------------------------------------------------------------------
    def validate(self, urls: list[str]) -> list[str]:
        """Check the URL list without network access; return it stripped. Raises `UserInputError`."""
        cleaned = [u.strip() for u in urls if u and u.strip()]
        if not cleaned:
            raise UserInputError("no audio URLs were given")
        if len(cleaned) > self.settings.max_urls:
            raise UserInputError(f"too many URLs ({len(cleaned)}); the limit is {self.settings.max_urls}")
        bad = []
        for u in cleaned:
            scheme = urllib.parse.urlsplit(u).scheme.lower() if not u[:5].lower() == "data:" else "data"
            if scheme not in ("http", "https", "data"):
                bad.append(
                    f"  {short_url(u)}: scheme {scheme + '://' if scheme else '(none)'} is not accepted; "
                    "give http://, https:// or data: URLs"
                )
            elif scheme in ("http", "https") and not urllib.parse.urlsplit(u).hostname:
                bad.append(f"  {short_url(u)}: the URL has no host name")
        if bad:
            raise UserInputError("these audio URLs cannot be used:\n" + "\n".join(bad))
        return cleaned

    def download(
        self, urls: list[str], out_dir: str | os.PathLike[str], cancel: threading.Event | None = None
    ) -> list[DownloadedFile]:
        """Download and convert every URL into `out_dir`; all succeed or one `UserInputError` lists failures.

        `cancel`: set it to stop; `CancelledError` is raised within about a second. `DiskFullError` when
        the disk fills up.
        """
        urls = self.validate(urls)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._total = 0
        results = self._download_all(urls, out_dir, cancel or threading.Event())
        ok = [r for r in results if isinstance(r, DownloadedFile)]
        failed = [(u, r) for u, r in zip(urls, results) if isinstance(r, str)]
        if failed:
            for r in ok:
                r.path.unlink(missing_ok=True)
        if _DISK_FULL in results:
            raise disk_full_error(out_dir, "downloading the audio")
        if failed:
            lines = "\n".join(f"  {short_url(u)}: {reason}" for u, reason in failed)
            raise UserInputError(
                f"{len(failed)} of {len(urls)} audio URL(s) could not be used; fix or remove them and try again:\n"
                + lines
            )
        total_s = sum(r.duration_s for r in ok)
        _log.info("downloaded %d file(s), %.1f MiB, %.1f s of audio", len(ok), self._total / MiB, total_s)
        return ok

    def _download_all(self, urls: list[str], out_dir: Path, cancel: threading.Event) -> list[DownloadedFile | str]:
        """Each URL's file or the reason it failed, downloaded by a thread pool. On a cancel (`cancel`,
        or an exception raised in this thread) the threads are stopped, not awaited, and files removed."""
        stop = threading.Event()  # ours: set on the caller's cancel, or when the disk is full
        self._cancel = stop
        session = self._session()
        width = max(3, len(str(len(urls) - 1)))
        results: list[DownloadedFile | str] = [""] * len(urls)

        def job(i: int) -> None:
            results[i] = self._job(session, i, urls[i], out_dir, width)
            if results[i] == _DISK_FULL:
                stop.set()  # the others cannot finish either

        _log.info("downloading %d file(s) with %d worker(s)", len(urls), self.settings.max_workers)
        pool = ThreadPoolExecutor(max_workers=min(self.settings.max_workers, len(urls)), thread_name_prefix="download")
        s = self.settings
        watchdog = self._watchdog = TransferWatchdog(
            stop, s.min_rate_bytes_s, s.min_rate_after_s, name="download-watchdog"
        )
        done_ok = False
        try:
            with watchdog:
                pending = {pool.submit(job, i) for i in range(len(urls))}
                while pending:
                    _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    if cancel.is_set():
                        raise CancelledError("cancelled while downloading the audio")
                done_ok = True
        except BaseException:
            # a cancel (ours, or cog's exception raised in this thread): stop the threads, do not wait
            stop.set()
            watchdog.abort_all("cancelled")
            raise
        finally:
            pool.shutdown(wait=done_ok, cancel_futures=True)
            session.close()
            if not done_ok:
                for r in results:
                    if isinstance(r, DownloadedFile):
                        r.path.unlink(missing_ok=True)
        return results

    def _session(self) -> requests.Session:
        import requests

        session = requests.Session()
        session.headers["User-Agent"] = self.settings.user_agent
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.settings.max_workers, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def _job(self, session: requests.Session, i: int, url: str, out_dir: Path, width: int) -> DownloadedFile | str:
        """URL number `i`'s file, or why it failed (redacted; `_DISK_FULL` when the disk is full)."""
        try:
            return self._one(session, i, url, out_dir, width)
        except _DownloadFailed as e:
            return redact_text(e.reason)
        except Cancelled:
            return "cancelled"
        except Exception as e:  # noqa: BLE001 - every failure becomes a line in the user's error
            if isinstance(e, _DiskFull) or (isinstance(e, OSError) and is_disk_full(e)):
                return _DISK_FULL
            _log.exception("unexpected failure downloading %s", short_url(url))
            return redact_text(f"unexpected error: {type(e).__name__}: {e}")

    # ---- one URL ------------------------------------------------------------------------------
    def _one(self, session: requests.Session, index: int, url: str, out_dir: Path, width: int) -> DownloadedFile:
        raw = out_dir / f".{index:0{width}d}.download"
        dst = out_dir / f"{index:0{width}d}_{safe_stem(url)}.wav"
        attempts = 0
        try:
            if url[:5].lower() == "data:":
                attempts = 1
                nbytes = self._data_uri(url, raw)
            else:
                nbytes, attempts = self._fetch_with_retries(session, url, raw)
            try:
                info = probe(raw)
                convert_to_wav(raw, dst)
            except AudioDecodeError as e:
                # the message starts with the temp file's name; the user knows the URL instead
                reason = str(e).split(": ", 1)[-1]
                raise _DownloadFailed(reason) from e
        finally:
            raw.unlink(missing_ok=True)
        _log.info(
            "%s -> %s (%.1f s, %d Hz, %s%s)",
            short_url(url), dst.name, info.duration_s, info.sample_rate, info.codec, ", video" if info.has_video else "",
        )  # fmt: skip
        return DownloadedFile(
            url=redact_url(url, 1000),
            path=dst,
            bytes_downloaded=nbytes,
            duration_s=info.duration_s,
            sample_rate=info.sample_rate,
            source_codec=info.codec,
            attempts=attempts,
        )

    def _reserve(self, n: int) -> None:
        with self._lock:
            if self._total + n > self.settings.max_total_bytes:
                raise _DownloadFailed(
                    f"the total download size limit ({self.settings.max_total_bytes / MiB:.0f} MiB) was exceeded"
                )
            self._total += n

    def _release(self, n: int) -> None:
        with self._lock:
            self._total -= n

    def _too_big(self) -> _DownloadFailed:
        return _DownloadFailed(
            f"the file is larger than the per-file limit ({self.settings.max_file_bytes / MiB:.0f} MiB)"
        )

    def _data_uri(self, url: str, raw: Path) -> int:
        header, sep, payload = url.partition(",")
        if not sep:
            raise _DownloadFailed("malformed data: URI (no comma)")
        is_b64 = header.lower().endswith(";base64")
        est = len(payload) * 3 // 4 if is_b64 else len(payload)
        if est > self.settings.max_file_bytes:
            raise self._too_big()
        try:
            data = base64.b64decode(payload, validate=False) if is_b64 else urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError) as e:
            raise _DownloadFailed(f"malformed base64 in data: URI ({e})") from e
        if len(data) > self.settings.max_file_bytes:
            raise self._too_big()
        self._reserve(len(data))
        _write(raw.write_bytes, data)
        return len(data)

    def _fetch_with_retries(self, session: requests.Session, url: str, raw: Path) -> tuple[int, int]:
        """(bytes received, attempts made) downloading `url` into `raw`, retrying transient failures
        (`settings.retry_policy`) until the file's deadline."""
        deadline = time.monotonic() + self.settings.deadline_s
        try:
            return call_with_retries(
                lambda: self._fetch(session, url, raw, deadline),
                self.settings.retry_policy,
                short_url(url),
                deadline=deadline,
                cancel=self._cancel,
                log=_log,
            )
        except RetriesExhausted as e:
            if e.past_deadline:
                raise _DownloadFailed(f"{e.last.reason}; {self._deadline_text()}") from e
            if e.attempts > 1:
                raise _DownloadFailed(f"{e.last.reason} (gave up after {e.attempts} attempts)") from e
            raise _DownloadFailed(e.last.reason) from e

    def _deadline_text(self) -> str:
        return (
            f"the download did not finish within {self.settings.deadline_s:g} s (the per-file deadline, {DEADLINE_ENV})"
        )

    def _open(self, session: requests.Session, url: str, file_deadline: float) -> requests.Response:
        """GET `url` (stream), following redirects here: each hop must be http(s) to a public host."""
        s = self.settings
        current = url
        for _ in range(s.max_redirects + 1):
            parts = urllib.parse.urlsplit(current)
            if parts.scheme.lower() not in ("http", "https"):
                scheme = parts.scheme.lower() or "(none)"
                raise _DownloadFailed(f"redirected to a {scheme}:// URL; only http(s) is accepted")
            if not parts.hostname:
                raise _DownloadFailed("redirected to a URL without a host name")
            try:
                check_destination(current)
            except DestinationRefused as e:
                raise _DownloadFailed(str(e)) from None
            left = max(0.5, file_deadline - time.monotonic())
            r = session.get(
                current,
                stream=True,
                timeout=(min(s.connect_timeout_s, left), min(s.read_timeout_s, left)),
                allow_redirects=False,
            )
            try:
                if not _proxied(session, current):  # through a proxy the peer is the proxy
                    check_peer(_socket_of(r), parts.hostname)
            except DestinationRefused as e:
                r.close()
                raise _DownloadFailed(str(e)) from None
            target = session.get_redirect_target(r) if r.status_code in _REDIRECTS else None
            if not target:
                return r
            r.close()
            current = urllib.parse.urljoin(current, target)
        raise _DownloadFailed("too many redirects")

    def _fetch(self, session: requests.Session, url: str, raw: Path, file_deadline: float) -> int:
        """One attempt at `url` into `raw`: the bytes received. `TransientError` for what may pass."""
        t = Transfer(file_deadline)
        watching = self._watchdog.watch(t) if self._watchdog is not None else contextlib.nullcontext(t)
        try:
            with watching, self._open(session, url, file_deadline) as r:
                t.sock = _socket_of(r)
                if t.reason:
                    t.abort(t.reason)
                if r.status_code >= 400:
                    transient = status_error(r.status_code, r.reason or "", r.headers)
                    raise transient or _DownloadFailed(f"HTTP {r.status_code} {r.reason or ''}".strip())
                received = self._receive(r, raw, t)
                ctype = (r.headers.get("Content-Type") or "").lower()
        except (_DownloadFailed, TransientError, _DiskFull, Cancelled):
            raise
        except Exception as e:
            err = self._aborted(t) if t.reason else self._request_error(e)
            if err is e:
                raise
            raise err from e
        if received == 0:
            raise _DownloadFailed("the server sent an empty file (0 bytes)")
        if "text/html" in ctype:
            bad = describe_bad_file(raw)
            if bad:
                raise _DownloadFailed(bad)
        return received

    def _receive(self, r: requests.Response, raw: Path, t: Transfer) -> int:
        """Stream the body into `raw` within the size limits: the bytes received."""
        limit = self.settings.max_file_bytes
        length = r.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise self._too_big()
        received = 0
        try:
            with open(raw, "wb") as f:
                for chunk in body_chunks(r, _CHUNK):
                    if t.reason:
                        break
                    if received + len(chunk) > limit:
                        raise self._too_big()
                    self._reserve(len(chunk))
                    received += len(chunk)
                    t.received = received
                    _write(f.write, chunk)
        except BaseException:
            self._release(received)
            raise
        if t.reason:
            self._release(received)
            raise self._aborted(t)
        return received

    def _aborted(self, t: Transfer) -> Exception:
        if t.reason == "cancelled":
            return Cancelled()
        if t.reason == "deadline":
            return _DownloadFailed(self._deadline_text())
        el = max(1e-9, time.monotonic() - t.started)
        return _DownloadFailed(
            f"the server sent {t.received / el / 1024:.1f} KiB/s on average, below the minimum "
            f"{self.settings.min_rate_bytes_s / 1024:g} KiB/s"
        )

    def _request_error(self, e: Exception) -> Exception:
        """What a failed request means for the user (`TransientError` when another attempt may
        help); `e` itself when it is none of the known failures."""
        import requests
        import urllib3

        s = self.settings
        rex = requests.exceptions
        read_timeout = f"the server stopped sending data for {s.read_timeout_s:g} s (read timeout)"
        truncated = (
            "the transfer was cut off before the end (truncated download: fewer bytes than the server announced)"
        )
        if isinstance(e, (urllib3.exceptions.ReadTimeoutError, rex.ReadTimeout, TimeoutError)):
            return TransientError(read_timeout)
        if isinstance(e, (urllib3.exceptions.ProtocolError, rex.ChunkedEncodingError)):
            return TransientError(truncated)
        if is_disk_full(e):
            return _DiskFull()
        if isinstance(e, rex.ConnectTimeout):
            return TransientError(f"connection timed out after {s.connect_timeout_s:g} s")
        if isinstance(e, rex.SSLError):
            return _DownloadFailed(f"TLS/SSL failed ({_short_exc(e)})")
        if isinstance(e, rex.ConnectionError):
            if "Read timed out" in str(e):
                return TransientError(read_timeout)
            return TransientError(f"connection failed ({_short_exc(e)})")
        if isinstance(e, (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema)):
            return _DownloadFailed(f"invalid URL ({_short_exc(e)})")
        if isinstance(e, rex.TooManyRedirects):
            return _DownloadFailed("too many redirects")
        if isinstance(e, rex.RequestException):
            return _DownloadFailed(f"download failed ({_short_exc(e)})")
        return e


def _write(write: Callable[[bytes], object], data: bytes) -> None:
    """`write(data)`; a full disk raises `_DiskFull`."""
    try:
        write(data)
    except OSError as e:
        if is_disk_full(e):
            raise _DiskFull() from e
        raise


def _proxied(session: requests.Session, url: str) -> bool:
    """True when `requests` sends `url` through a proxy (the session's, or the environment's)."""
    import requests

    proxies = dict(session.proxies)
    if session.trust_env:
        proxies = {**requests.utils.get_environ_proxies(url), **proxies}
    return bool(requests.utils.select_proxy(url, proxies))


def _socket_of(r: requests.Response) -> socket.socket | None:
    """The socket under a streamed `requests` response (urllib3 2), or None."""
    raw = getattr(r, "raw", None)
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _short_exc(e: BaseException) -> str:
    msg = redact_text(str(e))
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", msg)
    if m:
        return m.group(1).strip()
    return msg if len(msg) < 200 else msg[:197] + "..."
