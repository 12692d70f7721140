"""Downloading the user's recordings from URLs, all of them or none.

`WavDownloader(settings).download(urls, out_dir) -> list[DownloadedFile]`:

- accepts `http://`, `https://` and `data:` URIs; anything else (file://, ftp://, bare paths) is refused;
- downloads concurrently (a thread pool), streamed to disk in chunks, with connect and read timeouts,
  retrying connection errors, timeouts, truncated transfers and HTTP 5xx/429 with exponential backoff
  (`Retry-After` honoured up to `max_backoff_s`); other HTTP errors (404, 403, ...) fail at once;
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
import dataclasses
import os
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infer.lib.audio import AudioDecodeError, convert_to_wav, describe_bad_file, probe
from infer.lib.errors import UserInputError
from infer.lib.log import get_logger

_log = get_logger("download")

MiB = 1 << 20
_CHUNK = 256 * 1024


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
    user_agent: str = "rvc-trainer/0.1 (+https://github.com/RVC-Project)"

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_total_bytes", "max_workers", "max_urls"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"DownloadSettings.{name} must be > 0")
        for name in ("connect_timeout_s", "read_timeout_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"DownloadSettings.{name} must be > 0")
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("DownloadSettings.retries/backoff_s/max_backoff_s must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DownloadedFile:
    """One URL's result: the converted WAV and what was found out about it."""

    url: str  # as given (data: URIs shortened)
    path: Path  # the mono float WAV
    bytes_downloaded: int
    duration_s: float
    sample_rate: int  # the source's rate (the WAV keeps it)
    source_codec: str
    attempts: int

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d


class _DownloadFailed(Exception):
    """A URL failed for a reason worth showing to the user."""

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def short_url(url: str, limit: int = 120) -> str:
    """`url` for messages: data: URIs cut to their header, long URLs shortened."""
    if url[:5].lower() == "data:":
        head = url.split(",", 1)[0]
        return f"{head[:60]},... ({len(url)} chars)"
    return url if len(url) <= limit else url[: limit - 3] + "..."


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

    def __init__(self, settings: DownloadSettings | None = None):
        self.settings = settings or DownloadSettings()
        self._lock = threading.Lock()
        self._total = 0

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

    def download(self, urls: list[str], out_dir: str | os.PathLike[str]) -> list[DownloadedFile]:
        """Download and convert every URL into `out_dir`; all succeed or one `UserInputError` lists failures."""
        import requests

        urls = self.validate(urls)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self._total = 0
        width = max(3, len(str(len(urls) - 1)))
        session = requests.Session()
        session.headers["User-Agent"] = self.settings.user_agent
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.settings.max_workers, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        results: list[DownloadedFile | str] = [""] * len(urls)

        def job(i: int) -> None:
            try:
                results[i] = self._one(session, i, urls[i], out_dir, width)
            except _DownloadFailed as e:
                results[i] = e.reason
            except Exception as e:  # noqa: BLE001 - every failure becomes a line in the user's error
                _log.exception("unexpected failure downloading %s", short_url(urls[i]))
                results[i] = f"unexpected error: {type(e).__name__}: {e}"

        _log.info("downloading %d file(s) with %d worker(s)", len(urls), self.settings.max_workers)
        try:
            with ThreadPoolExecutor(max_workers=min(self.settings.max_workers, len(urls))) as pool:
                list(pool.map(job, range(len(urls))))
        finally:
            session.close()
        failed = [(urls[i], r) for i, r in enumerate(results) if isinstance(r, str)]
        if failed:
            for r in results:
                if isinstance(r, DownloadedFile):
                    r.path.unlink(missing_ok=True)
            lines = "\n".join(f"  {short_url(u)}: {reason}" for u, reason in failed)
            raise UserInputError(
                f"{len(failed)} of {len(urls)} audio URL(s) could not be used; fix or remove them and try again:\n"
                + lines
            )
        ok = [r for r in results if isinstance(r, DownloadedFile)]
        total_s = sum(r.duration_s for r in ok)
        _log.info("downloaded %d file(s), %.1f MiB, %.1f s of audio", len(ok), self._total / MiB, total_s)
        return ok

    # ---- one URL ------------------------------------------------------------------------------
    def _one(self, session, index: int, url: str, out_dir: Path, width: int) -> DownloadedFile:
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
            url=short_url(url, 1000),
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
        raw.write_bytes(data)
        return len(data)

    def _fetch_with_retries(self, session, url: str, raw: Path) -> tuple[int, int]:
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._fetch(session, url, raw), attempt
            except _DownloadFailed as e:
                if not e.retryable or attempt > s.retries:
                    if attempt > 1 and e.retryable:
                        raise _DownloadFailed(f"{e.reason} (gave up after {attempt} attempts)") from e
                    raise
                wait = min(s.max_backoff_s, s.backoff_s * 2 ** (attempt - 1))
                if e.retry_after is not None:
                    wait = min(s.max_backoff_s, max(wait, e.retry_after))
                _log.warning("%s: %s; retry %d/%d in %.1f s", short_url(url), e.reason, attempt, s.retries, wait)
                time.sleep(wait)

    def _fetch(self, session, url: str, raw: Path) -> int:
        import requests

        s = self.settings
        received = 0
        try:
            with session.get(
                url, stream=True, timeout=(s.connect_timeout_s, s.read_timeout_s), allow_redirects=True
            ) as r:
                if r.status_code >= 400:
                    retryable = r.status_code >= 500 or r.status_code == 429
                    retry_after = _retry_after(r.headers.get("Retry-After"))
                    raise _DownloadFailed(
                        f"HTTP {r.status_code} {r.reason or ''}".strip(), retryable=retryable, retry_after=retry_after
                    )
                length = r.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > s.max_file_bytes:
                    raise self._too_big()
                try:
                    with open(raw, "wb") as f:
                        for chunk in r.iter_content(_CHUNK):
                            if not chunk:
                                continue
                            if received + len(chunk) > s.max_file_bytes:
                                raise self._too_big()
                            self._reserve(len(chunk))
                            received += len(chunk)
                            f.write(chunk)
                except BaseException:
                    self._release(received)
                    raise
                ctype = (r.headers.get("Content-Type") or "").lower()
        except requests.exceptions.ConnectTimeout as e:
            raise _DownloadFailed(f"connection timed out after {s.connect_timeout_s:g} s", retryable=True) from e
        except (requests.exceptions.ReadTimeout, TimeoutError) as e:
            raise _DownloadFailed(
                f"the server stopped sending data for {s.read_timeout_s:g} s (read timeout)", retryable=True
            ) from e
        except requests.exceptions.ChunkedEncodingError as e:
            raise _DownloadFailed(
                "the transfer was cut off before the end (truncated download: fewer bytes than the server announced)",
                retryable=True,
            ) from e
        except requests.exceptions.ConnectionError as e:
            if "Read timed out" in str(e):
                raise _DownloadFailed(
                    f"the server stopped sending data for {s.read_timeout_s:g} s (read timeout)", retryable=True
                ) from e
            raise _DownloadFailed(f"connection failed ({_short_exc(e)})", retryable=True) from e
        except requests.exceptions.InvalidURL as e:
            raise _DownloadFailed(f"invalid URL ({e})") from e
        except requests.exceptions.TooManyRedirects as e:
            raise _DownloadFailed("too many redirects") from e
        except requests.exceptions.RequestException as e:
            raise _DownloadFailed(f"download failed ({_short_exc(e)})", retryable=True) from e
        if received == 0:
            raise _DownloadFailed("the server sent an empty file (0 bytes)")
        if "text/html" in ctype:
            bad = describe_bad_file(raw)
            if bad:
                raise _DownloadFailed(bad)
        return received


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _short_exc(e: BaseException) -> str:
    msg = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", msg)
    if m:
        return m.group(1).strip()
    return msg if len(msg) < 200 else msg[:197] + "..."
