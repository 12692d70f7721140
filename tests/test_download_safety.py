"""Downloads end and keep secrets: redaction, private hosts, redirects, deadline, rate, cancel (127.0.0.1)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infer.lib.errors import CancelledError, ConfigError, UserInputError
from infer.lib.urls import check_destination, is_public_address, redact_text, redact_url
from infer.lib.wav_downloader import DownloadSettings, WavDownloader
from tests.support.http_server import LocalHTTPServer, Reply

FAST = DownloadSettings(connect_timeout_s=2, read_timeout_s=30, retries=2, backoff_s=0.05, max_workers=2)


@pytest.fixture
def server():
    with LocalHTTPServer() as srv:
        yield srv


class _Records(logging.Handler):
    """Every message logged under `rvc`, as the call site formatted it (before any formatter)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + (str(record.exc_info[1]) if record.exc_info else ""))


@pytest.fixture
def rvc_log():
    h = _Records()
    root = logging.getLogger("rvc")
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(h)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


def test_redact_url_drops_user_info_query_and_fragment() -> None:
    assert redact_url("https://user:pa55@Host.example:8443/a/b.wav?X-Amz-Signature=s3cr3t#frag") == (
        "https://host.example:8443/a/b.wav"
    )
    assert redact_url("http://token@h/x.mp3") == "http://h/x.mp3"
    assert redact_url("http://[::1]:80/a?b") == "http://[::1]:80/a"
    assert redact_url("data:audio/wav;base64," + "A" * 500).startswith("data:audio/wav;base64,...")
    assert redact_url("http://h:notaport/a") == "(unparseable URL)"
    assert redact_url("user:pw@host/a.wav?t=1") == "host/a.wav"  # no scheme: "user" is not one
    assert redact_url("https://h/@user/v?x=1") == "https://h/@user/v"
    assert redact_text("see http://[::1]:80/a?tok=1 now") == "see http://[::1]:80/a now"
    text = "failed: GET https://u:p@h/a?sig=1 (url: /a?sig=2) and http://h/b?t=3"
    assert redact_text(text) == "failed: GET https://h/a (url: /a) and http://h/b"


def test_credentials_and_tokens_never_reach_logs_or_errors(server, rvc_log, tmp_path: Path) -> None:
    good = server.add("/flaky.wav", responses=[Reply(status=503), Reply(status=404)])
    url = good.replace("http://", "http://alice:hunter2@") + "?X-Amz-Signature=TOPSECRET&token=TOPSECRET"
    with pytest.raises(UserInputError) as e:
        WavDownloader(FAST).download([url], tmp_path)
    msg = str(e.value)
    assert "HTTP 404" in msg and "/flaky.wav" in msg
    for line in [msg, *rvc_log.lines]:
        assert "hunter2" not in line and "TOPSECRET" not in line and "alice" not in line, line
    assert any("retry 1/2" in ln for ln in rvc_log.lines)  # the retry warning was logged, redacted


def test_log_formatter_redacts_whatever_a_call_site_forgets(tmp_path: Path) -> None:
    from infer.lib.log import RedactingFormatter

    rec = logging.LogRecord(
        "rvc.x",
        logging.INFO,
        __file__,
        1,
        "GET %s from %s",
        ("https://u:pw@h/a?t=SECRET", str(tmp_path / "exp" / "G_1.pth")),
        None,
    )
    out = RedactingFormatter((str(tmp_path),)).format(rec)
    assert out.endswith("GET https://h/a from exp/G_1.pth"), out


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "0.0.0.0",
        "::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "240.0.0.1",
        "fe80::1",
    ],
)
def test_private_and_special_addresses_are_not_public(host: str) -> None:
    assert not is_public_address(host)


def test_public_address_literals_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RVC_ALLOW_PRIVATE_URLS", raising=False)
    assert is_public_address("8.8.8.8") and is_public_address("2606:4700:4700::1111")
    check_destination("https://8.8.8.8/a.wav")  # a literal: no DNS needed


def test_private_hosts_are_refused_naming_the_host_only(server, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RVC_ALLOW_PRIVATE_URLS", raising=False)
    url = server.add("/a.wav", b"RIFF....", content_type="text/html")
    local = url.replace("127.0.0.1", "localhost")
    with pytest.raises(UserInputError) as e:
        WavDownloader(FAST).download([url, local, "http://169.254.169.254/latest/meta-data/"], tmp_path)
    msg = str(e.value)
    assert msg.count("on a loopback, private, link-local or reserved network") == 3
    assert "the host 169.254.169.254" in msg and "the host localhost" in msg
    assert "HTML" not in msg and server.hits["/a.wav"] == 0  # nothing was fetched, nothing learnt


def test_redirect_to_a_private_host_is_refused_at_that_hop(server, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RVC_ALLOW_PRIVATE_URLS", "127.0.0.1")  # only this host: the first hop
    url = server.add("/share", responses=[Reply(status=302, headers={"Location": "http://169.254.169.254/x"})])
    t0 = time.monotonic()
    with pytest.raises(UserInputError, match="the host 169.254.169.254 is on a loopback"):
        WavDownloader(FAST).download([url], tmp_path)
    assert server.hits["/share"] == 1 and time.monotonic() - t0 < 5  # refused, not retried


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/a.wav", "gopher://h/x"])
def test_redirect_to_another_scheme_is_refused_once_not_retried(server, tmp_path: Path, target: str) -> None:
    url = server.add("/r", responses=[Reply(status=302, headers={"Location": target})])
    with pytest.raises(UserInputError, match=r"redirected to a \w+:// URL; only http\(s\) is accepted"):
        WavDownloader(FAST).download([url], tmp_path)
    assert server.hits["/r"] == 1


@pytest.mark.parametrize(
    ("reply", "limits", "says"),
    [
        pytest.param(  # headers, then nothing
            Reply(body=b"x" * 100, delay_s=20),
            {"deadline_s": 1.5},
            r"did not finish within 1.5 s \(the per-file deadline",
            id="deadline",
        ),
        pytest.param(
            Reply(body=b"x" * 1000, trickle_s=0.05),
            {"min_rate_after_s": 1.0, "min_rate_bytes_s": 10_000},
            r"KiB/s on average, below the minimum 9.76562 KiB/s",
            id="minimum-rate",
        ),
    ],
)
def test_a_download_that_never_finishes_fails_once_within_seconds(
    server, tmp_path: Path, reply: Reply, limits: dict[str, Any], says: str
) -> None:
    url = server.add("/slow.wav", responses=[reply])
    s = DownloadSettings(connect_timeout_s=2, read_timeout_s=30, retries=3, backoff_s=0.05, **limits)
    t0 = time.monotonic()
    with pytest.raises(UserInputError, match=says):
        WavDownloader(s).download([url], tmp_path)
    assert time.monotonic() - t0 < 4 and server.hits["/slow.wav"] == 1


def test_cancel_reaches_the_download_threads_within_seconds(server, tmp_path: Path) -> None:
    urls = [
        server.add("/stall.wav", b"x" * 100, delay_s=30),
        server.add("/drip.wav", responses=[Reply(body=b"x" * 500, trickle_s=0.1)]),
    ]
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(CancelledError):
        WavDownloader(FAST).download(urls, tmp_path, cancel=cancel)
    assert time.monotonic() - t0 < 3
    time.sleep(0.5)
    assert server.hits["/stall.wav"] == 1 and server.hits["/drip.wav"] == 1  # no retry after the cancel
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".wav"]


def test_an_exception_in_the_waiting_thread_cancels_the_downloads(server, tmp_path: Path) -> None:
    """cog's cancel raises in the thread that waits; the download threads must stop too."""
    import signal

    url = server.add("/drip.wav", responses=[Reply(body=b"x" * 500, trickle_s=0.05)])

    class Stop(Exception):
        pass

    def handler(*_: object) -> None:
        raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(Stop):
            WavDownloader(FAST).download([url], tmp_path)
    finally:
        signal.signal(signal.SIGALRM, old)
    n = server.hits["/drip.wav"]
    time.sleep(1.0)
    assert n == 1 and server.hits["/drip.wav"] == 1
    assert not any(t.name.startswith("download") for t in threading.enumerate())


def test_deadline_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DownloadSettings().deadline_s == 900
    monkeypatch.setenv("RVC_DOWNLOAD_DEADLINE_S", "42.5")
    assert DownloadSettings().deadline_s == 42.5
    monkeypatch.setenv("RVC_DOWNLOAD_DEADLINE_S", "soon")
    with pytest.raises(ConfigError, match="RVC_DOWNLOAD_DEADLINE_S"):
        DownloadSettings()
