"""WeightDownloader against a real HTTP server on 127.0.0.1 (Range support, dropped connections, 404s)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infer.lib.errors import ConfigError, UserInputError, WeightsError
from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
from infer.lib.weights import (
    BUNDLES,
    HUBERT,
    MANIFEST,
    MOSSFORMER2,
    RMVPE,
    RVC_HF,
    STANDIN_MANIFEST,
    WeightBundle,
    WeightFile,
    all_weights,
    base_weights,
    pretrained_names,
    required_weights,
)
from tools import download_weights

# --------------------------------------------------------------------------------------------------
# A small file server with HTTP Range, injected faults and a request log
# --------------------------------------------------------------------------------------------------


@dataclass
class Served:
    data: bytes
    drop_after: list[int] = field(default_factory=list)  # per request: close after sending this many bytes
    corrupt_times: int = 0  # the first N full responses carry damaged bytes
    delay_s: float = 0.0
    ignore_range: bool = False


class FileServer:
    """`ThreadingHTTPServer` serving `files` {url path: Served}; logs (path, Range header) per request."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.log: list[tuple[str, str | None]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def requests_for(self, path: str) -> list[str | None]:
        return [rng for p, rng in self.log if p == path]

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        with self._lock:
            self.log.append((h.path, rng))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            f = self.files.get(h.path)
            if f is None:
                h.send_response(404)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if f.delay_s:
                time.sleep(f.delay_s)
            data = f.data
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and not f.ignore_range:
                start = int(m.group(1))
                if start >= len(data):
                    h.send_response(416)
                    h.send_header("Content-Range", f"bytes */{len(data)}")
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return
                h.send_response(206)
                h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                h.send_response(200)
                if f.corrupt_times > 0:
                    f.corrupt_times -= 1
                    data = bytes(b ^ 0xFF for b in data[:16]) + data[16:]
            body = data[start:]
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            if f.drop_after:
                n = f.drop_after.pop(0)
                h.wfile.write(body[:n])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)  # drop the connection mid-file
                return
            h.wfile.write(body)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def server() -> Iterator[FileServer]:
    s = FileServer()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic bytes of length n."""
    out = bytearray()
    block = hashlib.sha256(f"seed{seed}".encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def range_start(header: str | None) -> int:
    """The first byte a `Range: bytes=N-` request header asks for."""
    m = re.fullmatch(r"bytes=(\d+)-", header or "")
    assert m is not None, header
    return int(m.group(1))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(server: FileServer, name: str, data: bytes, *, known: bool = True, **kw: Any) -> WeightFile:
    """Serve `data` at /origin/<name> (`kw`: `Served`'s faults) and return its manifest entry (size/sha256
    given when `known`)."""
    server.files[f"/origin/{name}"] = Served(data, **kw)
    return WeightFile(
        name,
        (f"{server.url}/origin/{name}",),
        len(data) if known else None,
        sha(data) if known else None,
        "test",
    )


def settings(tmp_path: Path, **kw: Any) -> WeightsSettings:
    fast = {"backoff_s": 0.01, "timeout_s": 5.0, "retries": 3, "lock_timeout_s": 10.0}
    return WeightsSettings(**{"weights_dir": tmp_path / "w", **fast, **kw})


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def test_parallel_fetch_of_a_set(server: FileServer, tmp_path: Path) -> None:
    files = {f"pretrained_v2/f{i}.pth": payload(40_000 + i, seed=i) for i in range(4)}
    manifest = {n: entry(server, n, d, delay_s=0.3) for n, d in files.items()}
    dl = WeightDownloader(settings(tmp_path, max_workers=4), manifest, {})
    t0 = time.monotonic()
    paths = dl.fetch(list(files))
    elapsed = time.monotonic() - t0
    for name, data in files.items():
        assert paths[name] == tmp_path / "w" / name
        assert paths[name].read_bytes() == data
    assert server.max_active >= 2, "downloads did not overlap"
    assert elapsed < 4 * 0.3, f"4 delayed files took {elapsed:.2f}s: not parallel"
    assert sorted(dl.stats.downloaded) == sorted(files)
    # no temporary or partial files left beside the weights; only hidden lock/stamp files
    leftovers = [p.name for p in (tmp_path / "w" / "pretrained_v2").iterdir() if p.name.endswith(".part")]
    assert leftovers == []
    # a second fetch finds everything cached and downloads nothing
    server.log.clear()
    WeightDownloader(settings(tmp_path), manifest, {}).fetch(list(files))
    assert server.log == []


def test_resume_after_dropped_connection(server: FileServer, tmp_path: Path) -> None:
    data = payload(300_000)
    manifest = {HUBERT: entry(server, HUBERT, data, drop_after=[100_000, 50_000])}
    dl = WeightDownloader(settings(tmp_path), manifest, {})
    path = dl.fetch([HUBERT])[HUBERT]
    assert path.read_bytes() == data
    ranges = server.requests_for(f"/origin/{HUBERT}")
    assert len(ranges) == 3
    assert ranges[0] is None
    # each retry asks for the rest only, from what was kept of the dropped transfer (whole chunks)
    first, second = range_start(ranges[1]), range_start(ranges[2])
    assert 0 < first <= 100_000 and first < second <= first + 50_000
    assert dl.stats.bytes < len(data) + 1000  # nothing fetched twice


def test_resume_from_partial_left_by_an_earlier_run(server: FileServer, tmp_path: Path) -> None:
    data = payload(200_000, seed=3)
    manifest = {RMVPE: entry(server, RMVPE, data, drop_after=[50_000] * 10)}
    with pytest.raises(WeightsError, match="download failed"):
        WeightDownloader(settings(tmp_path, retries=1), manifest, {}).fetch([RMVPE])
    part = tmp_path / "w" / "rmvpe" / ".rmvpe.pt.part"
    kept = part.stat().st_size
    assert 0 < kept < len(data)
    server.files[f"/origin/{RMVPE}"].drop_after.clear()
    server.log.clear()
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([RMVPE])
    assert (tmp_path / "w" / RMVPE).read_bytes() == data
    assert server.requests_for(f"/origin/{RMVPE}") == [f"bytes={kept}-"]
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server: FileServer, tmp_path: Path) -> None:
    data = payload(90_000, seed=4)
    manifest = {HUBERT: entry(server, HUBERT, data, drop_after=[30_000], ignore_range=True)}
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([HUBERT])
    assert (tmp_path / "w" / HUBERT).read_bytes() == data


def test_checksum_mismatch_fetched_again_then_refused(server: FileServer, tmp_path: Path) -> None:
    data = payload(50_000, seed=5)
    name = "pretrained_v2/f0G40k.pth"
    # damaged once: fetched again and accepted
    manifest = {name: entry(server, name, data, corrupt_times=1)}
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([name])
    assert (tmp_path / "w" / name).read_bytes() == data
    assert server.requests_for(f"/origin/{name}") == [None, None]
    # damaged every time: refused after the second try, nothing installed
    (tmp_path / "w" / name).unlink()
    server.log.clear()
    manifest = {name: entry(server, name, data, corrupt_times=99)}
    with pytest.raises(WeightsError) as e:
        WeightDownloader(settings(tmp_path), manifest, {}).fetch([name])
    msg = str(e.value)
    assert name in msg and "sha256" in msg and sha(data) in msg and "twice" in msg
    assert f"{server.url}/origin/{name}" in msg
    assert server.requests_for(f"/origin/{name}") == [None, None]
    assert not (tmp_path / "w" / name).exists()
    assert not list((tmp_path / "w" / "pretrained_v2").glob(".*.part"))


def test_404_reported_by_name_and_url(server: FileServer, tmp_path: Path) -> None:
    name = "pretrained/f0G48k.pth"
    url = f"{server.url}/nowhere/{name}"
    manifest = {name: WeightFile(name, (url,), 10, None, "test")}
    with pytest.raises(WeightsError) as e:
        WeightDownloader(settings(tmp_path), manifest, {}).fetch([name])
    assert name in str(e.value) and url in str(e.value) and "404" in str(e.value)
    assert len(server.requests_for(f"/nowhere/{name}")) == 1  # a 404 is not retried


def test_second_url_used_when_first_is_missing(server: FileServer, tmp_path: Path) -> None:
    data = payload(5000, seed=6)
    name = HUBERT
    server.files[f"/b/{name}"] = Served(data)
    manifest = {name: WeightFile(name, (f"{server.url}/a/{name}", f"{server.url}/b/{name}"), len(data), sha(data))}
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([name])
    assert (tmp_path / "w" / name).read_bytes() == data


def test_several_failures_reported_together(server: FileServer, tmp_path: Path) -> None:
    manifest = {
        n: WeightFile(n, (f"{server.url}/gone/{n}",), None, None)
        for n in ("pretrained/G32k.pth", "pretrained/D32k.pth")
    }
    with pytest.raises(WeightsError) as e:
        WeightDownloader(settings(tmp_path), manifest, {}).fetch(list(manifest))
    for n in manifest:
        assert n in str(e.value)


def test_base_url_override_keeps_relative_paths(server: FileServer, tmp_path: Path) -> None:
    data = {HUBERT: payload(7000, 7), "pretrained_v2/f0D40k.pth": payload(9000, 8)}
    # the public sources are unreachable (404); the mirror has the files under their relative paths
    manifest = {n: WeightFile(n, (f"{server.url}/public/{n}",), len(d), sha(d)) for n, d in data.items()}
    for n, d in data.items():
        server.files[f"/mirror/cdn/{n}"] = Served(d)
    s = WeightsSettings.from_env(
        {"RVC_WEIGHTS_BASE_URL": f"{server.url}/mirror/cdn/", "RVC_WEIGHTS_DIR": str(tmp_path / "w")}, backoff_s=0.01
    )
    assert s.base_url == f"{server.url}/mirror/cdn"
    dl = WeightDownloader(s, manifest, {})
    assert dl.urls(HUBERT) == (f"{server.url}/mirror/cdn/{HUBERT}",)
    dl.fetch(list(data))
    for n, d in data.items():
        assert (tmp_path / "w" / n).read_bytes() == d
    assert {p for p, _ in server.log} == {f"/mirror/cdn/{n}" for n in data}


def test_offline_uses_only_what_is_present(server: FileServer, tmp_path: Path) -> None:
    present, absent = payload(3000, 9), payload(4000, 10)
    manifest = {
        HUBERT: entry(server, HUBERT, present),
        RMVPE: entry(server, RMVPE, absent),
    }
    (tmp_path / "w" / "hubert").mkdir(parents=True)
    (tmp_path / "w" / HUBERT).write_bytes(present)
    s = WeightsSettings.from_env({"RVC_OFFLINE": "1", "RVC_WEIGHTS_DIR": str(tmp_path / "w")})
    assert s.offline
    dl = WeightDownloader(s, manifest, {})
    assert dl.fetch([HUBERT]) == {HUBERT: tmp_path / "w" / HUBERT}
    with pytest.raises(WeightsError) as e:
        dl.fetch([HUBERT, RMVPE])
    msg = str(e.value)
    assert "RVC_OFFLINE" in msg and f"{RMVPE}: missing" in msg and HUBERT not in msg.split("\n")[1]
    assert "python -m tools.download_weights --names rmvpe/rmvpe.pt" in msg
    # a damaged file is reported, not used
    (tmp_path / "w" / HUBERT).write_bytes(present[:-1] + b"x")
    with pytest.raises(WeightsError, match="sha256 .* expected .*corrupt"):
        dl.fetch([HUBERT])
    assert server.log == []  # offline never touched the network


def test_truncated_cached_file_is_completed_and_corrupt_one_replaced(server: FileServer, tmp_path: Path) -> None:
    data = payload(80_000, 11)
    manifest = {HUBERT: entry(server, HUBERT, data)}
    dest = tmp_path / "w" / HUBERT
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data[:50_000])  # truncated (e.g. copied while downloading)
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([HUBERT])
    assert dest.read_bytes() == data
    assert server.requests_for(f"/origin/{HUBERT}") == ["bytes=50000-"]  # only the rest was fetched
    # same size, different bytes: the sha256 check (re-done because mtime changed) catches it
    dest.write_bytes(data[:-5] + b"xxxxx")
    server.log.clear()
    WeightDownloader(settings(tmp_path), manifest, {}).fetch([HUBERT])
    assert dest.read_bytes() == data
    assert server.requests_for(f"/origin/{HUBERT}") == [None]


def test_stamp_remembers_the_checksum(server: FileServer, tmp_path: Path) -> None:
    data = payload(20_000, 12)
    manifest = {HUBERT: entry(server, HUBERT, data)}
    dl = WeightDownloader(settings(tmp_path), manifest, {})
    dest = dl.fetch([HUBERT])[HUBERT]
    stamp = dest.with_name(f".{dest.name}.verified.json")
    assert stamp.is_file() and sha(data) in stamp.read_text()
    # a stamp with the file's size and mtime is trusted (no re-hash): prove it by a lying stamp
    st = dest.stat()
    stamp.write_text(f'{{"size": {st.st_size}, "mtime_ns": {st.st_mtime_ns}, "sha256": "{"0" * 64}"}}')
    assert dl.missing([HUBERT]) == {HUBERT: f"sha256 {'0' * 64}, expected {sha(data)} (corrupt)"}
    # touching the file invalidates the stamp, so it is hashed again
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert dl.missing([HUBERT]) == {}
    # a stamp that is JSON but not an object counts as no stamp: the file is hashed
    for junk in ("[]", "3", '"text"', "null"):
        stamp.write_text(junk)
        assert dl.missing([HUBERT]) == {}


def test_unknown_checksum_accepts_download_and_records_it(server: FileServer, tmp_path: Path) -> None:
    data = payload(10_000, 13)
    name = "pretrained/f0G32k.pth"
    manifest = {name: entry(server, name, data, known=False, drop_after=[4000])}
    path = WeightDownloader(settings(tmp_path), manifest, {}).fetch([name])[name]
    assert path.read_bytes() == data  # completeness came from Content-Length / Content-Range
    assert sha(data) in path.with_name(f".{path.name}.verified.json").read_text()


def test_two_jobs_sharing_the_cache(server: FileServer, tmp_path: Path) -> None:
    data = payload(200_000, 14)
    manifest = {HUBERT: entry(server, HUBERT, data, delay_s=0.3)}
    results: list[object] = []

    def job() -> None:
        try:
            results.append(WeightDownloader(settings(tmp_path), manifest, {}).fetch([HUBERT])[HUBERT].read_bytes())
        except Exception as e:  # pragma: no cover - reported below
            results.append(e)

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [data, data, data]
    assert len(server.requests_for(f"/origin/{HUBERT}")) == 1  # the others waited, then found it verified


def test_bundle_fetches_its_folder(server: FileServer, tmp_path: Path) -> None:
    a, b = b"last_best_checkpoint.pt\n", payload(6000, 15)
    manifest = {
        f"{MOSSFORMER2}/last_best_checkpoint": entry(server, f"{MOSSFORMER2}/last_best_checkpoint", a, known=False),
        f"{MOSSFORMER2}/last_best_checkpoint.pt": entry(server, f"{MOSSFORMER2}/last_best_checkpoint.pt", b),
    }
    bundles = {MOSSFORMER2: WeightBundle(MOSSFORMER2, tuple(manifest))}
    paths = WeightDownloader(settings(tmp_path), manifest, bundles).fetch([MOSSFORMER2])
    folder = paths[MOSSFORMER2]
    assert folder == tmp_path / "w" / MOSSFORMER2
    assert (folder / "last_best_checkpoint").read_bytes() == a
    assert (folder / "last_best_checkpoint.pt").read_bytes() == b
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "last_best_checkpoint",
        "last_best_checkpoint.pt",
    ]


def test_unknown_name_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown weights 'hubert.pt'"):
        WeightDownloader(settings(tmp_path)).fetch(["hubert.pt"])


def test_standin_folder_verified_against_its_own_list(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    (folder / "hubert").mkdir(parents=True)
    data = b"not the real hubert"
    (folder / HUBERT).write_bytes(data)
    (folder / STANDIN_MANIFEST).write_text(
        f'{{"files": {{"{HUBERT}": {{"size": {len(data)}, "sha256": "{sha(data)}"}}}}}}'
    )
    # offline or not, no network is used for a listed stand-in file (the real URL is never tried)
    dl = WeightDownloader(WeightsSettings(weights_dir=folder))
    assert dl.fetch([HUBERT]) == {HUBERT: folder / HUBERT}
    (folder / HUBERT).write_bytes(b"damaged")
    with pytest.raises(WeightsError, match="stand-in file .*make_standin_weights"):
        WeightDownloader(WeightsSettings(weights_dir=folder)).fetch([HUBERT])


# --------------------------------------------------------------------------------------------------
# Settings, names, manifest, CLI
# --------------------------------------------------------------------------------------------------


def test_settings_from_env(tmp_path: Path, repo_root: Path) -> None:
    s = WeightsSettings.from_env({})
    assert s.weights_dir == repo_root / "assets" and s.base_url is None and s.offline is False
    s = WeightsSettings.from_env({"RVC_WEIGHTS_DIR": str(tmp_path), "RVC_OFFLINE": "true"})
    assert s.weights_dir == tmp_path and s.offline
    assert WeightsSettings.from_env({"RVC_OFFLINE": "0"}).offline is False
    with pytest.raises(ConfigError, match="RVC_OFFLINE"):
        WeightsSettings.from_env({"RVC_OFFLINE": "maybe"})
    with pytest.raises(ConfigError, match="RVC_WEIGHTS_BASE_URL"):
        WeightsSettings.from_env({"RVC_WEIGHTS_BASE_URL": "ftp://example.org"})
    with pytest.raises(AttributeError):
        s.offline = False  # type: ignore[misc]  # the read-only error under test; mypy reports it too


def test_pretrained_and_required_names() -> None:
    assert pretrained_names("v2", "40k", True) == ("pretrained_v2/f0G40k.pth", "pretrained_v2/f0D40k.pth")
    assert pretrained_names("v1", "32k", False) == ("pretrained/G32k.pth", "pretrained/D32k.pth")
    with pytest.raises(UserInputError, match="sample rate"):
        pretrained_names("v2", "44k", True)
    with pytest.raises(UserInputError, match="version"):
        pretrained_names("v3", "40k", True)
    assert required_weights("v2", "48k", True, "rmvpe", False) == [
        HUBERT,
        "pretrained_v2/f0G48k.pth",
        "pretrained_v2/f0D48k.pth",
        RMVPE,
    ]
    assert RMVPE in required_weights("v1", "40k", True, "rmvpe_gpu", False)
    assert required_weights("v1", "40k", True, "harvest", True) == [
        HUBERT,
        "pretrained/f0G40k.pth",
        "pretrained/f0D40k.pth",
        MOSSFORMER2,
    ]
    assert RMVPE not in required_weights("v2", "40k", False, "rmvpe", False)  # no pitch, no pitch network


def test_manifest_covers_the_layout_with_public_sources() -> None:
    for version, folder in (("v1", "pretrained"), ("v2", "pretrained_v2")):
        for sr in ("32k", "40k", "48k"):
            for f0 in (True, False):
                for n in pretrained_names(version, sr, f0):
                    assert n.startswith(folder + "/")
                    assert MANIFEST[n].urls == (f"{RVC_HF}/{n}",)
    assert MANIFEST[HUBERT].urls == (f"{RVC_HF}/hubert_base.pt",)
    assert MANIFEST[RMVPE].urls == (f"{RVC_HF}/rmvpe.pt",)
    for f in BUNDLES[MOSSFORMER2].files:
        assert MANIFEST[f].urls[0].startswith("https://huggingface.co/alibabasglab/MossFormer2_SE_48K/resolve/main/")
    assert len(all_weights()) == 2 + 24 + 1
    assert set(base_weights()) <= set(MANIFEST)
    known = [w for w in MANIFEST.values() if w.sha256]
    assert len(known) == 23  # see the manifest comment for the unknown ones
    for w in known:
        assert w.size is not None and w.size > 50_000_000


def test_cli_fetches_a_job_set_from_a_mirror(server: FileServer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a mirror holding files with the published names; the real manifest's sizes would not match, so
    # only names whose manifest entry has no checksum (v1 f0G) and the bundle text file are served
    name = "pretrained/f0G32k.pth"
    server.files[f"/m/{name}"] = Served(payload(1234, 16))
    rc = download_weights.main(["--names", name, "--weights-dir", str(tmp_path / "w"), "--base-url", f"{server.url}/m"])
    assert rc == 0
    assert (tmp_path / "w" / name).read_bytes() == payload(1234, 16)
    assert f"{name}\t{tmp_path / 'w' / name}" in capsys.readouterr().out
    # a job set in offline mode: clear failure, exit code 1, nothing fetched
    server.log.clear()
    rc = download_weights.main(
        ["--version", "v1", "--sample-rate", "32k", "--check", "--weights-dir", str(tmp_path / "w")]
    )
    assert rc == 1 and server.log == []


def test_cli_selection() -> None:
    parse = download_weights.build_parser().parse_args
    assert download_weights.selected_names(parse(["--base"])) == base_weights()
    assert download_weights.selected_names(parse(["--all"])) == all_weights()
    assert download_weights.selected_names(parse(["--version", "v2", "--no-f0", "--f0-method", "pm"])) == [
        HUBERT,
        "pretrained_v2/G40k.pth",
        "pretrained_v2/D40k.pth",
    ]
    with pytest.raises(SystemExit):
        download_weights.selected_names(parse([]))


def test_two_processes_sharing_the_cache(server: FileServer, tmp_path: Path, repo_root: Path) -> None:
    import subprocess
    import sys

    name = "pretrained/f0G32k.pth"  # no published checksum, so the real manifest accepts test bytes
    data = payload(300_000, 17)
    server.files[f"/m/{name}"] = Served(data, delay_s=2.0)  # long enough for both to be running
    cmd = [sys.executable, "-m", "tools.download_weights", "--names", name]
    cmd += ["--weights-dir", str(tmp_path / "w"), "--base-url", f"{server.url}/m"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RVC_")}
    procs = [
        subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert (tmp_path / "w" / name).read_bytes() == data
    assert len(server.requests_for(f"/m/{name}")) == 1, outs
    assert sum("another job is fetching it" in o for o in outs) == 1, outs  # one waited on the lock
