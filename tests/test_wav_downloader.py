"""WavDownloader against a real HTTP server on 127.0.0.1: good files of every format, and bad ones."""

from __future__ import annotations

import base64
import dataclasses
import time

import pytest
import soundfile as sf

from infer.lib.errors import UserInputError
from infer.lib.wav_downloader import DownloadSettings, WavDownloader, safe_stem
from tests.support.http_server import LocalHTTPServer, Reply
from tests.support.media import make_media

FAST = DownloadSettings(connect_timeout_s=2, read_timeout_s=0.5, retries=2, backoff_s=0.05, max_workers=4)


@pytest.fixture(scope="module")
def media(joe_1min, tmp_path_factory):
    return make_media(joe_1min / "joe_000.wav", tmp_path_factory.mktemp("media"), seconds=2.0)


@pytest.fixture
def server():
    with LocalHTTPServer() as srv:
        yield srv


def test_good_files_of_every_format(server, media, tmp_path):
    urls = [server.add(f"/files/speech.{ext}", media[ext].read_bytes()) for ext in media]
    # same last path segment twice, and a hostile-looking name: outputs stay unique and safe
    urls.append(server.add("/other/speech.wav", media["wav"].read_bytes()))
    urls.append(server.add("/x/..%2F..%2Fetc%2Fpasswd%20%E2%9C%93.flac", media["flac"].read_bytes()))
    urls.append("data:audio/wav;base64," + base64.b64encode(media["wav"].read_bytes()).decode())
    out = tmp_path / "dl"
    got = WavDownloader(FAST).download(urls, out)
    assert len(got) == len(urls)
    names = [g.path.name for g in got]
    assert len(set(names)) == len(names)
    assert all(g.path.parent == out and g.path.suffix == ".wav" for g in got)
    assert names[-2].startswith(f"{len(urls) - 2:03d}_") and "/" not in names[-2] and ".." not in names[-2]
    assert names[-1] == f"{len(urls) - 1:03d}_data.wav"
    for g in got:
        info = sf.info(str(g.path))
        assert info.channels == 1 and info.subtype == "FLOAT"
        assert info.samplerate == g.sample_rate
        assert abs(info.frames / info.samplerate - 2.0) < 0.1, g.url
        assert g.attempts == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temp files left
    assert {g.source_codec for g in got} >= {"pcm_s16le", "mp3", "flac", "vorbis", "aac", "opus"}


def test_retry_on_500_and_429_then_success(server, media, tmp_path):
    body = media["mp3"].read_bytes()
    url = server.add(
        "/flaky.mp3",
        responses=[Reply(status=500, body=b"oops"), Reply(status=429, headers={"Retry-After": "0"}), Reply(body=body)],
    )
    (got,) = WavDownloader(FAST).download([url], tmp_path)
    assert got.attempts == 3 and server.hits["/flaky.mp3"] == 3
    assert abs(got.duration_s - 2.0) < 0.1


def test_every_failure_listed_in_one_error(server, media, tmp_path):
    wav = media["wav"].read_bytes()
    m4a = media["m4a"].read_bytes()
    good = server.add("/good.wav", wav)
    urls = {
        "404": server.url("/missing.wav"),
        "always500": server.add("/broken.wav", status=503, body=b"down"),
        "slow": server.add("/slow.wav", wav, delay_s=3.0),
        "html": server.add("/share.wav", b"<!doctype html><html><title>Drive</title></html>", content_type="text/html"),
        "cut": server.add("/cut.wav", wav[:2000], content_length=len(wav)),
        "corrupt": server.add("/half.m4a", m4a[: len(m4a) // 3]),
        "big": server.add("/big.wav", wav * 2),
        "big_unannounced": server.add("/big2.wav", wav * 2, content_length=-1),
        "empty": server.add("/empty.mp3", b""),
        "ftp": "ftp://example.com/a.wav",
    }
    settings = DownloadSettings(
        connect_timeout_s=2, read_timeout_s=0.5, retries=1, backoff_s=0.05, max_file_bytes=len(wav) + 10
    )
    # the scheme check happens before any download
    with pytest.raises(UserInputError, match="ftp://") as e:
        WavDownloader(settings).download([good, urls["ftp"]], tmp_path / "a")
    assert server.hits["/good.wav"] == 0
    del urls["ftp"]
    t0 = time.monotonic()
    with pytest.raises(UserInputError) as e:
        WavDownloader(settings).download([good, *urls.values()], tmp_path / "b")
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    lines = {k: next(ln for ln in msg.splitlines() if u in ln) for k, u in urls.items()}
    assert good not in msg
    assert "9 of 10" in msg
    assert "HTTP 404" in lines["404"]
    assert "HTTP 503" in lines["always500"] and "2 attempts" in lines["always500"]
    assert "read timeout" in lines["slow"]
    assert "HTML page" in lines["html"]
    assert "truncated" in lines["cut"]
    assert "ffmpeg" in lines["corrupt"] or "not a readable" in lines["corrupt"]
    assert "per-file limit" in lines["big"] and "per-file limit" in lines["big_unannounced"]
    assert "tmp" not in lines["corrupt"] and "0x" not in lines["corrupt"]
    assert "empty" in lines["empty"]
    assert server.hits["/missing.wav"] == 1  # 4xx is not retried
    assert server.hits["/broken.wav"] == 2
    assert elapsed < 10
    assert list((tmp_path / "b").iterdir()) == []  # nothing half-done is left behind


def test_total_limit(server, media, tmp_path):
    wav = media["wav"].read_bytes()
    urls = [server.add(f"/{i}.wav", wav) for i in range(3)]
    settings = DownloadSettings(max_total_bytes=int(len(wav) * 2.5), max_workers=1, retries=0)
    with pytest.raises(UserInputError, match="total download size limit"):
        WavDownloader(settings).download(urls, tmp_path)


def test_refused_schemes_and_settings():
    d = WavDownloader()
    for bad in ["file:///etc/passwd", "/tmp/a.wav", "ftp://h/a.mp3", "javascript:alert(1)", "http:///nohost"]:
        with pytest.raises(UserInputError):
            d.validate([bad])
    with pytest.raises(UserInputError, match="no audio URLs"):
        d.validate(["", "  "])
    assert d.validate([" https://h/a.wav "]) == ["https://h/a.wav"]
    with pytest.raises(ValueError):
        DownloadSettings(max_file_bytes=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        FAST.retries = 5  # type: ignore[misc]  # the read-only error under test; mypy reports it too
    assert safe_stem("https://h/a/%2E%2E%2Fpasswd") == "passwd"
    assert safe_stem("https://h/") == "audio"


def test_redirect_is_followed(server, media, tmp_path):
    target = server.add("/real/file.ogg", media["ogg"].read_bytes())
    url = server.add("/share/abc", responses=[Reply(status=302, headers={"Location": target})])
    (got,) = WavDownloader(FAST).download([url], tmp_path)
    assert got.source_codec == "vorbis" and got.path.name == "000_abc.wav"
