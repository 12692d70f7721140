"""The pinned Python packages: requirements-cog.txt derived from requirements.txt, and a check that
every pin installs from a binary wheel on the images' platform.

    python -m tools.pins sync      # rewrite requirements-cog.txt's copy of requirements.txt
    python -m tools.pins wheels    # every pin has a wheel for CPython 3.11, linux x86_64 (asks the index)

Where each pin is spelled (once):

| file | what | used by |
|---|---|---|
| requirements.txt | runtime packages shared by every environment | all |
| requirements-cog.txt | the GPU torch/torchaudio (CUDA 11.8) above the marker line, then a generated copy of requirements.txt (cog does not follow `-r`) | cog.yaml, Dockerfile |
| requirements-cpu.txt | the CPU torch | tools/setup_env.sh |
| requirements-dev.txt | test tools, cog SDK and coglet (= cog.yaml `build.sdk_version`) | tools/setup_env.sh |
| requirements-nodeps.txt | clearvoice, installed with `--no-deps` | all |

The wheel check reads the package index (PEP 691 JSON, or PEP 503 HTML) rather than running
`pip download`, which would fetch every wheel (torch alone is 0.8-2.5 GB); a file counts when pip
would take it for the pin: its name parses as a wheel of that version (`==` ignores a local label such
as `+cu118`), one of its tags is supported by CPython 3.11 on x86_64 Linux with glibc 2.35 (the oldest
of our images: Ubuntu 22.04 under cog's CUDA 11.8 base; Debian 12 has 2.36), and its Requires-Python
admits 3.11.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COG_REQUIREMENTS = "requirements-cog.txt"
MARKER = "# ---- generated below: a copy of requirements.txt (python -m tools.pins sync); do not edit ----"
# Files whose pins are installed somewhere, besides requirements-cog.txt's own (above its marker).
PINNED_FILES = ("requirements.txt", "requirements-nodeps.txt", "requirements-cpu.txt", "requirements-dev.txt")
PYTHON = (3, 11)
GLIBC_MINOR_MAX = 35
PLATFORMS = [f"manylinux_2_{m}_x86_64" for m in range(GLIBC_MINOR_MAX, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
PYPI_SIMPLE = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class Pin:
    """One `name==version` line."""

    name: str  # as written
    version: str
    where: str  # "file:line"


@dataclass(frozen=True)
class RequirementsFile:
    pins: tuple[Pin, ...]
    extra_index_urls: tuple[str, ...]


def parse_requirements(text: str, name: str) -> RequirementsFile:
    """The pins and `--extra-index-url`s of a requirements file's text; any other kind of line is an
    error (unpinned names, `-r` includes, markers), since every install route relies on exact pins."""
    from packaging.requirements import Requirement

    pins, extra = [], []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        where = f"{name}:{i}"
        if not line:
            continue
        if line.startswith("-"):
            opt, _, value = line.replace("=", " ", 1).partition(" ")
            if opt == "--extra-index-url":
                extra.append(value.strip())
            elif opt != "--only-binary":
                raise ValueError(f"{where}: unsupported option line {raw!r}")
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if req.marker or req.url or len(specs) != 1 or specs[0].operator != "==":
            raise ValueError(f"{where}: {raw!r} is not an exact pin (name==version)")
        pins.append(Pin(req.name, specs[0].version, where))
    return RequirementsFile(tuple(pins), tuple(extra))


def read_requirements(path: Path) -> RequirementsFile:
    return parse_requirements(path.read_text(), path.name)


# ------------------------------------------------------------------------------------------ sync
def render_cog_requirements(cog_text: str, shared_text: str) -> str:
    """requirements-cog.txt = its own head (up to and including MARKER) + requirements.txt verbatim."""
    head, found, _ = cog_text.partition(MARKER)
    if not found:
        raise ValueError(f"{COG_REQUIREMENTS} lacks the marker line {MARKER!r}")
    return head + MARKER + "\n" + shared_text


def sync(root: Path = REPO_ROOT) -> bool:
    """Rewrite requirements-cog.txt's generated part; True when it changed."""
    path = root / COG_REQUIREMENTS
    old = path.read_text()
    new = render_cog_requirements(old, (root / "requirements.txt").read_text())
    if new != old:
        path.write_text(new)
    return new != old


# ---------------------------------------------------------------------------------------- wheels
def target_tags() -> dict:
    """Every wheel tag pip accepts for CPython 3.11 on x86_64 Linux with glibc <= 2.35 -> its rank
    (0 = the one pip prefers most)."""
    from packaging import tags

    abi = f"cp{PYTHON[0]}{PYTHON[1]}"
    ordered = [*tags.cpython_tags(PYTHON, [abi], PLATFORMS), *tags.compatible_tags(PYTHON, abi, PLATFORMS)]
    return {t: i for i, t in reversed(list(enumerate(ordered)))}


@dataclass(frozen=True)
class IndexFile:
    filename: str
    requires_python: str | None


def _session():
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    s = requests.Session()
    retry = Retry(total=4, connect=1, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504))
    s.mount("https://", HTTPAdapter(max_retries=retry, pool_maxsize=16))
    return s


def index_files(session, index_url: str, name: str, timeout: float = 60.0) -> list[IndexFile]:
    """The files an index lists for a project (PEP 691 JSON or PEP 503 HTML); [] when it has none."""
    from packaging.utils import canonicalize_name

    url = f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"
    r = session.get(url, headers={"Accept": ACCEPT}, timeout=timeout)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    if "json" in r.headers.get("Content-Type", ""):
        return [IndexFile(f["filename"], f.get("requires-python")) for f in r.json()["files"]]
    out = []
    for attrs, text in re.findall(r"<a\b([^>]*)>([^<]+)</a>", r.text):
        m = re.search(r'data-requires-python="([^"]*)"', attrs)
        out.append(IndexFile(html.unescape(text.strip()), html.unescape(m.group(1)) if m else None))
    return out


def matching_wheels(pin: Pin, files: list[IndexFile], tags: dict) -> list[str]:
    """Filenames of wheels pip would accept for `pin` on the target platform, the preferred first."""
    from packaging.specifiers import SpecifierSet
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    spec = SpecifierSet(f"=={pin.version}")
    py = Version(".".join(map(str, PYTHON)) + ".0")
    out = []
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        try:
            name, version, _, wheel_tags = parse_wheel_filename(f.filename)
        except InvalidWheelFilename:
            continue
        if name != canonicalize_name(pin.name) or not spec.contains(version, prereleases=True):
            continue
        if f.requires_python and not SpecifierSet(f.requires_python).contains(py, prereleases=True):
            continue
        ranks = [tags[t] for t in wheel_tags if t in tags]
        if ranks:
            out.append((min(ranks), f.filename))
    return [name for _, name in sorted(out)]


@dataclass(frozen=True)
class WheelReport:
    found: dict[Pin, str]  # pin -> one matching wheel on the package index
    missing: list[str]  # one message per pin without a wheel
    gpu_index: dict[str, str | None]  # "torch==2.7.1+cu118" -> a wheel there (None: none), per extra index
    unreachable: list[str]  # extra indexes that could not be read (not counted as missing)


def index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", PYPI_SIMPLE)


def gpu_requirements(root: Path = REPO_ROOT) -> RequirementsFile:
    """requirements-cog.txt's own part (above the marker): the GPU torch pins and their index."""
    head = (root / COG_REQUIREMENTS).read_text().partition(MARKER)[0]
    return parse_requirements(head, COG_REQUIREMENTS)


def check_wheels(root: Path = REPO_ROOT, session=None) -> WheelReport:
    """The GPU pins and every pin of PINNED_FILES against the package index; the GPU pins also
    against their extra index, which must hold a `+<index name>` build (e.g. torch 2.7.1+cu118 from
    .../whl/cu118). Raises when the main index cannot be read."""
    import requests

    session = session or _session()
    gpu = gpu_requirements(root)
    pins = list(dict.fromkeys([*gpu.pins, *(p for name in PINNED_FILES for p in read_requirements(root / name).pins)]))
    tags = target_tags()
    main = index_url()

    def listing(args):
        url, name = args
        try:
            return index_files(session, url, name)
        except requests.RequestException as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        names = list(dict.fromkeys(p.name for p in pins))
        listings = dict(zip(names, pool.map(listing, [(main, n) for n in names]), strict=True))
        gpu_jobs = [(url, p) for url in gpu.extra_index_urls for p in gpu.pins]
        gpu_listings = list(pool.map(listing, [(url, p.name) for url, p in gpu_jobs]))

    found, missing = {}, []
    for p in pins:
        got = listings[p.name]
        if isinstance(got, Exception):
            raise RuntimeError(f"cannot read {main} for {p.name}: {got}") from got
        wheels = matching_wheels(p, got, tags)
        if wheels:
            found[p] = wheels[0]
        else:
            have = _files_of(p, got)
            missing.append(
                f"{p.where}: {p.name}=={p.version} has no wheel for CPython 3.11 on manylinux x86_64 at {main}"
                + (f" (only: {', '.join(have[:6])})" if have else "")
            )
    gpu_index, unreachable = {}, []
    for (url, p), got in zip(gpu_jobs, gpu_listings, strict=True):
        if isinstance(got, Exception):
            unreachable.append(f"{url} ({type(got).__name__})")
            continue
        local = url.rstrip("/").rsplit("/", 1)[-1]
        key = f"{p.name}=={p.version}+{local}"
        wheels = matching_wheels(Pin(p.name, f"{p.version}+{local}", p.where), got, tags)
        gpu_index[key] = wheels[0] if wheels else None
        if not wheels:
            missing.append(f"{p.where}: {key} has no wheel for CPython 3.11 on linux x86_64 at {url}")
    return WheelReport(found, missing, gpu_index, sorted(set(unreachable)))


def _files_of(p: Pin, files: list[IndexFile]) -> list[str]:
    """The index's files (any kind) of the pinned version, for the error message."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
    from packaging.version import Version

    out = []
    for f in files:
        try:
            v = (
                parse_wheel_filename(f.filename)[1]
                if f.filename.endswith(".whl")
                else parse_sdist_filename(f.filename)[1]
            )
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if v == Version(p.version):
            out.append(f.filename)
    return sorted(out)


# ------------------------------------------------------------------------------------------- cli
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["sync", "wheels"])
    args = ap.parse_args(argv)
    if args.command == "sync":
        changed = sync()
        print(f"{COG_REQUIREMENTS}: {'updated' if changed else 'already up to date'}")
        return 0
    report = check_wheels()
    for p, wheel in report.found.items():
        print(f"ok       {p.name + '==' + p.version:<32} {wheel}")
    for key, gpu_wheel in report.gpu_index.items():
        print(f"{'ok' if gpu_wheel else 'MISSING':<8} {key:<32} {gpu_wheel or ''}")
    for url in report.unreachable:
        print(f"skipped  {url}: not reachable from here")
    for msg in report.missing:
        print(f"MISSING  {msg}", file=sys.stderr)
    return 1 if report.missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
