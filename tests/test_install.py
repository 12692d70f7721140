"""The install routes: cog.yaml, the Dockerfile and compose, and the pins they install (`tools/pins.py`).

The wheel tests ask the real package index (PyPI, reachable wherever the suite runs: `make test` sets
up the venv from it), so a pin without a linux CPython 3.11 wheel fails here, not in an image build.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tools import pins
from tools.pins import IndexFile, Pin, matching_wheels, parse_requirements, read_requirements, target_tags

DEPRECATED_COG_KEYS = {"predict", "concurrency"}  # cog 0.23: `run:` replaces `predict:`
DEPRECATED_BUILD_KEYS = {"python_packages", "pre_install"}
COMPILERS = ("gcc", "g++", "build-essential", "clang", "python3-dev", "cmake")


def _pin(path: Path, name: str) -> str:
    return next(p.version for p in read_requirements(path).pins if p.name == name)


def _cog(root: Path) -> dict:
    return yaml.safe_load((root / "cog.yaml").read_text())


# ------------------------------------------------------------------------------------------ pins
def test_requirements_cog_is_gpu_torch_plus_requirements_txt(repo_root: Path) -> None:
    text = (repo_root / "requirements-cog.txt").read_text()
    assert text == pins.render_cog_requirements(text, (repo_root / "requirements.txt").read_text()), (
        "requirements-cog.txt is stale: run `python -m tools.pins sync` and commit it"
    )
    head = pins.gpu_requirements(repo_root)
    assert [p.name for p in head.pins] == ["torch", "torchaudio"]
    assert head.extra_index_urls == ("https://download.pytorch.org/whl/cu118",)
    assert re.search(r"^--only-binary=:all:$", text, re.M), "the images install wheels only"
    shared = read_requirements(repo_root / "requirements.txt").pins
    assert not {"torch", "torchaudio"} & {p.name for p in shared}, "torch is pinned per environment"


def test_every_requirements_line_is_an_exact_pin(repo_root: Path) -> None:
    for name in (*pins.PINNED_FILES, "requirements-cog.txt"):
        assert read_requirements(repo_root / name).pins, name  # raises on anything but name==version
    with pytest.raises(ValueError, match="not an exact pin"):
        parse_requirements("numpy>=2\n", "x.txt")
    with pytest.raises(ValueError, match="unsupported option"):
        parse_requirements("-r requirements.txt\n", "x.txt")


def test_the_wheel_rule_matches_pip() -> None:
    """Which index files count as a wheel for a pin (cross-checked once against `pip download
    --only-binary=:all: --platform manylinux_2_{17..35}_x86_64 --python-version 3.11`)."""
    tags = target_tags()

    def ok(filename: str, version: str = "1.0", requires_python: str | None = None) -> bool:
        return bool(matching_wheels(Pin("pkg-name", version, "-"), [IndexFile(filename, requires_python)], tags))

    assert ok("pkg_name-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert ok("pkg_name-1.0-cp311-cp311-manylinux_2_35_x86_64.whl")
    assert ok("pkg_name-1.0-cp310-abi3-manylinux_2_28_x86_64.whl")
    assert ok("pkg_name-1.0-py3-none-any.whl")
    assert ok("pkg_name-1.0+cu118-cp311-cp311-manylinux_2_28_x86_64.whl")  # == ignores a local label
    assert not ok("pkg-name-1.0.tar.gz")  # an sdist needs a compiler
    assert not ok("pkg_name-1.0-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert not ok("pkg_name-1.0-cp311-cp311-manylinux_2_39_x86_64.whl")  # newer glibc than our images
    assert not ok("pkg_name-1.0-cp311-cp311-musllinux_1_2_x86_64.whl")
    assert not ok("pkg_name-1.0-cp311-cp311-manylinux_2_17_aarch64.whl")
    assert not ok("pkg_name-1.0-cp311-cp311-win_amd64.whl")
    assert not ok("pkg_name-1.0.1-py3-none-any.whl")
    assert not ok("pkg_name-1.0-py3-none-any.whl", requires_python=">=3.12")
    files = [
        IndexFile("pkg_name-1.0-py3-none-any.whl", None),
        IndexFile("pkg_name-1.0-cp311-cp311-manylinux1_x86_64.whl", None),
    ]
    assert matching_wheels(Pin("pkg-name", "1.0", "-"), files, tags)[0].endswith("manylinux1_x86_64.whl")


def test_check_wheels_reads_json_and_html_indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole check against a local PyPI-like index (PEP 691 JSON) and a PyTorch-like one (PEP 503
    HTML): a pin with only an sdist is reported with its file and line, an unreachable extra index
    is listed, not failed."""
    import json
    import socket

    from tests.support.http_server import LocalHTTPServer

    def simple_json(*names: str) -> bytes:
        return json.dumps({"meta": {"api-version": "1.1"}, "files": [{"filename": n} for n in names]}).encode()

    wheel = "torch-2.7.1+cu118-cp311-cp311-manylinux_2_28_x86_64.whl"
    html = f'<a href="/f/{wheel.replace("+", "%2B")}#sha256=00" data-requires-python="&gt;=3.9.0">{wheel}</a><br/>'
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with LocalHTTPServer() as srv:
        ctype = "application/vnd.pypi.simple.v1+json"
        srv.add(
            "/simple/torch/", body=simple_json("torch-2.7.1-cp311-cp311-manylinux_2_28_x86_64.whl"), content_type=ctype
        )
        srv.add("/simple/pkg-a/", body=simple_json("pkg_a-1.0-py3-none-any.whl"), content_type=ctype)
        srv.add("/simple/pkg-b/", body=simple_json("pkg_b-2.0.tar.gz"), content_type=ctype)
        srv.add("/whl/cu118/torch/", body=html.encode(), content_type="text/html")
        head = f"--only-binary=:all:\n--extra-index-url {srv.url('/whl/cu118')}\n"
        head += f"--extra-index-url http://127.0.0.1:{closed_port}/whl/cu999\ntorch==2.7.1\n"
        (tmp_path / "requirements-cog.txt").write_text(head + pins.MARKER + "\n")
        (tmp_path / "requirements.txt").write_text("pkg-a==1.0\npkg-b==2.0\n")
        for name in pins.PINNED_FILES[1:]:
            (tmp_path / name).write_text("")
        monkeypatch.setenv("PIP_INDEX_URL", srv.url("/simple"))
        report = pins.check_wheels(tmp_path)
    assert [p.name for p in report.found] == ["torch", "pkg-a"]
    assert report.gpu_index == {"torch==2.7.1+cu118": wheel}
    assert len(report.missing) == 1 and report.missing[0].startswith("requirements.txt:2: pkg-b==2.0 has no wheel")
    assert "only: pkg_b-2.0.tar.gz" in report.missing[0]
    assert report.unreachable == [f"http://127.0.0.1:{closed_port}/whl/cu999 (ConnectionError)"]


@pytest.fixture(scope="module")
def wheel_report(repo_root: Path) -> pins.WheelReport:
    return pins.check_wheels(repo_root)


def test_every_pin_has_a_linux_cp311_wheel(wheel_report: pins.WheelReport, repo_root: Path) -> None:
    assert not wheel_report.missing, "\n".join(wheel_report.missing)
    names = {p.name for p in wheel_report.found}
    for name in pins.PINNED_FILES:
        assert {p.name for p in read_requirements(repo_root / name).pins} <= names


def test_gpu_torch_has_cuda_wheels_on_its_index(wheel_report: pins.WheelReport) -> None:
    if wheel_report.unreachable:
        pytest.skip(f"not reachable from this machine: {', '.join(wheel_report.unreachable)}")
    assert set(wheel_report.gpu_index) == {"torch==2.7.1+cu118", "torchaudio==2.7.1+cu118"}
    assert all(wheel_report.gpu_index.values()), wheel_report.gpu_index


# ------------------------------------------------------------------------------------------- cog
def test_cog_yaml(repo_root: Path) -> None:
    cfg = _cog(repo_root)
    build = cfg["build"]
    assert not DEPRECATED_COG_KEYS & set(cfg) and not DEPRECATED_BUILD_KEYS & set(build)
    assert cfg["run"] == "predict.py:Predictor"
    assert build["gpu"] is True and build["cuda"] == "11.8" and build["python_version"] == "3.11"
    assert build["sdk_version"] == _pin(repo_root / "requirements-dev.txt", "cog")
    assert "ffmpeg" in build["system_packages"]
    assert build["python_requirements"] == "requirements-cog.txt"
    runs = [r if isinstance(r, str) else r["command"] for r in build["run"]]
    for cmd in runs:
        assert not re.search(r"(^|[;&|]\s*)pip\b", cmd), f"bare pip is missing on some cog bases: {cmd}"
    for p in read_requirements(repo_root / "requirements-nodeps.txt").pins:
        assert any(f"-m pip install --no-cache-dir --no-deps {p.name}=={p.version}" in c for c in runs), p
    cuda_check = f"torch.version.cuda == '{build['cuda']}'"
    assert any(cuda_check in c for c in runs)


# ------------------------------------------------------------------------------------ docker
def test_dockerfile_installs_the_cog_stack_without_a_compiler(repo_root: Path) -> None:
    docker = (repo_root / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert "pip install -r requirements-cog.txt" in docker
    assert "pip install --no-deps -r requirements-nodeps.txt" in docker
    assert not re.search(r"\btorch(audio)?==", docker), "torch's GPU pin lives in requirements-cog.txt only"
    dev = repo_root / "requirements-dev.txt"
    for name in ("cog", "coglet"):
        assert f"{name}=={_pin(dev, name)}" in docker
    apt_line = re.search(r"apt-get install[^\n]*", docker)
    assert apt_line is not None
    apt = apt_line.group(0)
    assert "ffmpeg" in apt and not any(re.search(rf"\s{re.escape(c)}(\s|$)", apt) for c in COMPILERS)
    assert f"torch.version.cuda == '{_cog(repo_root)['build']['cuda']}'" in docker
    assert "useradd --create-home --uid 1000" in docker and re.search(r"^USER rvc$", docker, re.M)
    assert "install -d -o rvc -g rvc /app /app/assets /app/runs" in docker
    assert re.search(r"RVC_WEIGHTS_DIR=/app/assets", docker) and re.search(r"RVC_JOBS_DIR=/app/runs", docker)
    assert re.search(r'^CMD \["python", "infer-web.py"', docker, re.M)


def test_compose_keeps_weights_and_jobs_in_named_volumes(repo_root: Path) -> None:
    """Named volumes start owned by the image's user; a bind mount of a missing host folder is
    created root-owned, which the container's uid 1000 cannot write."""
    compose = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    web = compose["services"]["web"]
    mounts = dict(v.split(":", 1)[::-1] for v in web["volumes"])
    assert set(mounts) == {"/app/assets", "/app/runs"}
    for source in mounts.values():
        assert "/" not in source and source in compose["volumes"], f"{source} must be a named volume"
    assert web["environment"]["RVC_WEIGHTS_DIR"] == "/app/assets" and web["environment"]["RVC_JOBS_DIR"] == "/app/runs"
    devices = web["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
