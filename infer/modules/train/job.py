"""The job runner: one training job from the user's inputs to the model zip, for every front end.

    result = run_job(options, inputs, Workspace.create(base), shared_models=shared, on_event=print)

`run_job` is what the Predictor (`predict.py`), `tools/train.py`, `tools/demo.py` and the web UI
(`infer-web.py`) call. It owns the job from start to end, in the numbered stages of
`infer.modules.train.progress.job_stages`: collecting the audio (downloads, dataset zips, local
files), checking that every file decodes (before any weight download), the weights, every training
stage, packaging, and clean-up of the workspace. Progress goes to the log (`[stage i/N] name`) and,
as `ProgressEvent`s, to `on_event`.

`Workspace`: a fresh folder per job (`<base>/job-<time>-<id>/{inputs,exp,cache,out}` and `.lock`), so
several jobs can run in one process; each folder is locked (`infer.lib.jobguard.JobLock`) while in
use, and a new workspace removes only the unlocked folders of earlier jobs (their returned archives),
so processes sharing `RVC_JOBS_DIR` never delete each other's running jobs.

`SharedModels`: what every job of a process shares, loaded once (the Predictor's `setup()`): the
device, the weights settings, HuBERT on the device, the enhancer when its weights are present.

Environment: `RVC_JOBS_DIR` (where workspaces go; default the system temp dir), `RVC_CACHE_DIR` (the
extraction cache across jobs, bounded by `RVC_CACHE_MAX_GB`; unset, each job's cache is in its
workspace and goes with it), `RVC_TEST_TINY_MODEL=1` (TEST ONLY: a tiny network and discriminator
trained from scratch, so the HTTP API and web UI tests finish on a CPU; a model trained this way is
useless).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from infer.lib.errors import CancelledError, UserInputError
from infer.lib.log import get_logger
from infer.lib.options import TrainOptions
from infer.lib.urls import redact_url
from infer.modules.train.progress import EventCallback, JobProgress, job_stages

if TYPE_CHECKING:
    from infer.modules.train.pipeline import TrainModules

_log = get_logger("job")

URL_SCHEMES = ("http://", "https://", "data:")
TINY_ENV = "RVC_TEST_TINY_MODEL"
JOBS_ENV = "RVC_JOBS_DIR"


def check_zip(path: str | os.PathLike[str], what: str) -> pathlib.Path:
    """`path` when it is a readable zip archive; `UserInputError` naming `what` otherwise."""
    p = pathlib.Path(path)
    if not p.is_file():
        raise UserInputError(f"{what}: the uploaded file is missing ({p.name})", field=what)
    if not zipfile.is_zipfile(p):
        raise UserInputError(f"{what} must be a .zip file; {p.name!r} is not a zip archive", field=what)
    return p


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobInputs:
    """The user's audio: `urls` (http/https/data:), dataset `zips`, local audio `files` (used in place,
    names kept). Checked on construction (cheap checks only): at least one source, URL schemes, zips.
    """

    urls: tuple[str, ...] = ()
    zips: tuple[pathlib.Path, ...] = ()
    files: tuple[pathlib.Path, ...] = ()

    def __post_init__(self) -> None:
        urls = tuple(u.strip() for u in self.urls if u and u.strip())
        bad = [u for u in urls if not u.lower().startswith(URL_SCHEMES)]
        if bad:
            raise UserInputError(
                "wav_urls must be http(s) URLs or data: URIs; not usable: "
                + ", ".join(repr(redact_url(u)) for u in bad[:5]),
                field="wav_urls",
            )
        zips = tuple(check_zip(z, "dataset") for z in self.zips)
        files = tuple(pathlib.Path(f) for f in self.files)
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UserInputError(f"no such file: {', '.join(missing[:5])}", field="files")
        if not urls and not zips and not files:
            raise UserInputError(
                "no training audio: give `wav_urls` (links to recordings of the voice) and/or `dataset` "
                "(a zip of them)",
                field="dataset",
            )
        object.__setattr__(self, "urls", urls)
        object.__setattr__(self, "zips", zips)
        object.__setattr__(self, "files", files)

    def to_dict(self) -> dict[str, Any]:
        """For the log: URLs redacted, file names only."""
        return {
            "wav_urls": [redact_url(u) for u in self.urls],
            "zips": [z.name for z in self.zips],
            "files": [f.name for f in self.files],
        }


def collect_audio(
    inputs: JobInputs, work_dir: pathlib.Path, cancel: threading.Event | None = None
) -> list[pathlib.Path]:
    """Every audio file of `inputs`: local files as given, zips extracted, URLs downloaded into `work_dir`
    (`cancel` stops the downloads)."""
    from infer.lib.diskspace import GiB, ensure_free_space
    from infer.modules.train.preprocess import collect_inputs

    if inputs.zips or inputs.urls:
        ensure_free_space(work_dir, GiB, "downloading and unpacking the audio")
    files = list(inputs.files)
    for i, z in enumerate(inputs.zips):
        files += collect_inputs(None, z, work_dir / f"zip{i}")
    if inputs.urls:
        files += collect_inputs(list(inputs.urls), None, work_dir / "downloads", cancel=cancel)
    if not files:
        raise UserInputError("no audio files found in the inputs (the zips hold no audio)", field="dataset")
    return files


# ------------------------------------------------------------------------------------------------
# The workspace
# ------------------------------------------------------------------------------------------------
class Workspace:
    """One job's folder `<base>/job-<time>-<id>/`:

    inputs/   downloaded and extracted audio      (deleted when the job ends)
    exp/      the experiment folder (reference layout; deleted when the job ends)
    cache/    the extraction cache                (deleted when the job ends; unless RVC_CACHE_DIR)
    out/      the archive returned to the caller  (kept after success until `release()`)
    .lock     held (flock) while the folder is in use: no process purges it meanwhile
    """

    PREFIX = "job-"

    def __init__(self, root: pathlib.Path, exp_dir: pathlib.Path | None = None) -> None:
        self.root = pathlib.Path(root)
        self._exp_dir = pathlib.Path(exp_dir) if exp_dir is not None else None
        self._lock: Any = None

    @classmethod
    def for_experiment(cls, exp_dir: str | os.PathLike[str]) -> Workspace:
        """A workspace whose experiment folder is `exp_dir` (kept, re-used to resume: `tools/train.py
        --workdir`); inputs and output go to a hidden `.<name>-job/` beside it."""
        exp = pathlib.Path(exp_dir)
        ws = cls(exp.parent / f".{exp.name}-job", exp_dir=exp)
        for d in (ws.inputs_dir, ws.out_dir, exp):
            d.mkdir(parents=True, exist_ok=True)
        return ws

    @staticmethod
    def default_base() -> pathlib.Path:
        return pathlib.Path(os.environ.get(JOBS_ENV) or pathlib.Path(tempfile.gettempdir()) / "rvc-jobs")

    @classmethod
    def create(cls, base: str | os.PathLike[str] | None = None, purge: bool = True) -> Workspace:
        """A fresh, empty, locked job folder under `base`; with `purge`, earlier jobs' folders that no
        live process (this one included) holds are removed first."""
        from infer.lib.jobguard import JobLock, purge_unlocked

        base = pathlib.Path(base) if base else cls.default_base()
        base.mkdir(parents=True, exist_ok=True)
        if purge:
            purge_unlocked(base, cls.PREFIX)
        name = f"{cls.PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        ws = cls(base / name)
        ws.root.mkdir()
        ws._lock = JobLock(ws.root).acquire()
        for sub in ("inputs", "exp", "out"):
            (ws.root / sub).mkdir()
        return ws

    @property
    def inputs_dir(self) -> pathlib.Path:
        return self.root / "inputs"

    @property
    def exp_dir(self) -> pathlib.Path:
        return self._exp_dir if self._exp_dir is not None else self.root / "exp"

    @property
    def out_dir(self) -> pathlib.Path:
        return self.root / "out"

    @property
    def cache_dir(self) -> pathlib.Path:
        return self.root / "cache"

    def output_archive(self, name: str) -> pathlib.Path:
        """Where the returned zip goes: `out/<name>.zip`."""
        return self.out_dir / f"{name}.zip"

    def cache(self) -> Any:
        """The extraction cache: in the workspace (deleted with it) unless RVC_CACHE_DIR (then bounded)."""
        from infer.lib.cache import CACHE_DIR_ENV, ArrayCache

        root = os.environ.get(CACHE_DIR_ENV)
        return ArrayCache(pathlib.Path(root) if root else self.cache_dir)

    def finish(self, success: bool) -> None:
        """Delete the large intermediates; keep `out/` (and the lock) only when the job succeeded: the
        caller hands the archive over, then calls `release()`."""
        for sub in ("inputs", "exp", "cache"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        if not success:
            shutil.rmtree(self.root, ignore_errors=True)
            self.release()

    def release(self) -> None:
        """Free the folder's lock: a later workspace may purge it."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None


# ------------------------------------------------------------------------------------------------
# What jobs share
# ------------------------------------------------------------------------------------------------
@dataclass
class SharedModels:
    """Loaded once per process, used by every job: the device, the weights settings, HuBERT on the
    device, the MossFormer2 enhancer (when its weights are present), the speech detector and speaker
    encoder of the data check, the base weights' paths."""

    device: Any
    weights_settings: Any
    hubert: Any = None
    enhancer: Any = None
    vad: Any = None
    speaker: Any = None
    weights: dict[str, pathlib.Path] = field(default_factory=dict)

    @classmethod
    def load(cls, device: Any = None, weights_settings: Any = None) -> SharedModels:
        """Fetch the base weights when they are not baked in (HuBERT and RMVPE, required; the pretrained
        pair of the default variant, best effort), check that HuBERT and RMVPE load, and load the
        enhancer once when its weights exist. A broken or stand-in file is reported here, not mid-job."""
        from infer.lib.device import enable_tf32, pick_device
        from infer.lib.errors import WeightsError
        from infer.lib.hubert import load_hubert
        from infer.lib.rmvpe import load_rmvpe
        from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
        from infer.lib.weights import HUBERT, RMVPE, base_weights

        device = device if device is not None else pick_device()
        enable_tf32()
        settings = weights_settings or WeightsSettings.from_env()
        wd = WeightDownloader(settings)
        paths = wd.fetch([HUBERT, RMVPE])
        pair = [n for n in base_weights() if n not in (HUBERT, RMVPE)]  # the default variant's pretrained G/D
        try:
            paths.update(wd.fetch(pair))
        except WeightsError as e:
            _log.warning("the default pretrained pair is not here (%s): the first job that needs it fetches it", e)
        t0 = time.monotonic()
        half = getattr(device, "type", str(device)) == "cuda"
        shared = cls(device=device, weights_settings=settings, weights=dict(paths))
        shared.hubert = load_hubert(paths[HUBERT], device, half=half)
        load_rmvpe(paths[RMVPE], "cpu")  # a check only (a bad file fails here): the pitch stage loads its own copy
        _log.info("HuBERT loaded and RMVPE checked in %.1fs", time.monotonic() - t0)
        shared._load_data_models(wd)
        return shared

    def _load_data_models(self, wd: Any) -> None:
        """The data check's speech detector and speaker encoder (the process's ones, warmed up), and the
        enhancer when its weights are in `wd`'s folder."""
        from infer.lib.speaker import get_speaker_encoder
        from infer.lib.vad import get_speech_detector
        from infer.lib.weights import MOSSFORMER2

        t0 = time.monotonic()
        self.vad, self.speaker = get_speech_detector(), get_speaker_encoder()
        self.vad.warm_up()
        self.speaker.warm_up()
        _log.info(
            "speech detector (Silero VAD) and speaker encoder (resemblyzer) loaded in %.1fs", time.monotonic() - t0
        )
        if not wd.missing([MOSSFORMER2]):
            from infer.lib.enhance import get_enhancer

            self.enhancer = get_enhancer(wd.path(MOSSFORMER2), str(self.device))
            _log.info("MossFormer2 enhancer loaded")
        else:
            _log.info(
                "MossFormer2 weights not in %s: fetched by the first job that asks for enhancement", wd.weights_dir
            )


# ------------------------------------------------------------------------------------------------
# Child processes (ffmpeg, DDP workers) and cancellation
# ------------------------------------------------------------------------------------------------
def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (read from /proc; Linux only, empty elsewhere)."""
    parents: dict[int, list[int]] = {}
    proc = pathlib.Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def terminate_children(grace: float = 3.0) -> int:
    """SIGTERM this process's descendants, SIGKILL those still alive after `grace` s; return the count."""
    kids = children_of(os.getpid())
    for pid in kids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = kids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if pathlib.Path(f"/proc/{p}").exists() and not _is_zombie(p)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(kids)


def _is_zombie(pid: int) -> bool:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------------------------------
# The runner
# ------------------------------------------------------------------------------------------------
def tiny_mode() -> bool:
    """`RVC_TEST_TINY_MODEL=1`: TEST ONLY (see the module docstring)."""
    return os.environ.get(TINY_ENV, "").strip().lower() in ("1", "true", "yes")


def tiny_test_config(version: str, sample_rate: str) -> Any:
    """TEST ONLY (`RVC_TEST_TINY_MODEL=1`): the real config with a network small enough for CPU tests."""
    from infer.lib.config import load_config, tiny_network

    cfg = tiny_network(load_config(version, sample_rate))
    # training slices of 8 frames (a quarter of the usual): the discriminator's cost follows the slice length
    train = dataclasses.replace(cfg.train, log_interval=1, segment_size=cfg.data.hop_length * 8)
    return dataclasses.replace(cfg, train=train)


@dataclass
class JobResult:
    """What a job produced: the zip (None when stopped early by `until`), stage timings, stand-ins."""

    zip_path: pathlib.Path | None
    options: TrainOptions
    stage_seconds: dict[str, float]
    standin: list[str]
    exp_root: pathlib.Path


def run_job(
    options: TrainOptions,
    inputs: JobInputs,
    workspace: Workspace,
    *,
    shared_models: SharedModels | None = None,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    config: Any = None,
    weight_paths: dict[str, pathlib.Path] | None = None,
    cache: Any = None,
    train_overrides: dict[str, Any] | None = None,
    until: str | None = None,
    keep_workspace: bool = False,
) -> JobResult:
    """Run one job in `workspace` (see the module docstring); return its result.

    `cancel`: set it to stop at the next step (as SIGTERM and cog's cancel do). `config`: the network
    configuration (tests; default the variant's, or the tiny one under `RVC_TEST_TINY_MODEL=1`).
    `weight_paths`, `cache`, `train_overrides`: as `TrainModules`. `until`: stop after that stage
    (preprocess, features, train, index). `keep_workspace`: leave the experiment folder in place.
    Raises `UserInputError` (the user can fix it; logged without traceback), `CancelledError` (or
    cog's cancel exception) when cancelled, anything else as an internal error (traceback logged).
    Child processes are stopped on cancel and on failure; the workspace is cleaned up either way.
    """
    from infer.lib.jobguard import sigterm_stops

    cancel = cancel if cancel is not None else threading.Event()
    progress = JobProgress(job_stages(options.use_f0), options.epochs, on_event)
    success = False
    with sigterm_stops(cancel) as stop:
        try:
            _log.info("inputs: %s", inputs.to_dict())
            modules = _job_modules(
                options,
                workspace,
                shared_models,
                progress,
                cancel,
                config=config,
                weight_paths=weight_paths,
                cache=cache,
                train_overrides=train_overrides,
            )
            modules.check_resume()  # a wrong resume_from fails here, before any download
            with progress.stage("collect audio"):
                files = collect_audio(inputs, workspace.inputs_dir, cancel)
                _log.info("%d audio file(s) collected", len(files))
            if cancel.is_set():
                raise CancelledError("cancelled after collecting the audio")
            result = modules.run(files, workspace.output_archive(modules.o.experiment_name), until=until)
            if result.zip_path is not None:
                _check_model_zip(result.zip_path, modules.o.experiment_name, modules.standin)
                progress.finish("succeeded")
            success = True
            return JobResult(
                zip_path=result.zip_path,
                options=modules.o,
                stage_seconds=dict(progress.times),
                standin=list(modules.standin),
                exp_root=workspace.exp_dir,
            )
        except UserInputError as e:
            _log.error("%s", e)
            progress.finish("failed")
            raise
        except BaseException as e:
            _stopped(e, workspace, progress, cancel, sigterm=stop.received)
            raise
        finally:
            if not keep_workspace:
                workspace.finish(success)


def _job_modules(
    options: TrainOptions,
    workspace: Workspace,
    shared: SharedModels | None,
    progress: JobProgress,
    cancel: threading.Event,
    *,
    config: Any,
    weight_paths: dict[str, pathlib.Path] | None,
    cache: Any,
    train_overrides: dict[str, Any] | None,
) -> TrainModules:
    """The job's `TrainModules` (the other arguments as `run_job` got them): on the shared models'
    device with their HuBERT when there are shared models; the TEST-ONLY tiny network under
    `RVC_TEST_TINY_MODEL=1`."""
    from infer.lib.config import TINY_DISCRIMINATOR_PERIODS
    from infer.modules.train.pipeline import TrainModules

    if config is None and tiny_mode():
        config = tiny_test_config(options.version, options.sample_rate)
        # the tiny test network cannot start from the published pretrained G/D (other shapes)
        options = dataclasses.replace(options, from_scratch=True)
        train_overrides = {"discriminator_periods": TINY_DISCRIMINATOR_PERIODS, **(train_overrides or {})}
        _log.warning("%s=1: training the TEST-ONLY tiny network from scratch; the model will not be usable", TINY_ENV)
    if shared is not None and options.device is None:
        options = dataclasses.replace(options, device=str(shared.device))
    return TrainModules(
        options,
        workspace.exp_dir,
        weight_paths=weight_paths,
        config=config,
        cache=cache if cache is not None else workspace.cache(),
        cancel=cancel,
        weights_settings=shared.weights_settings if shared is not None else None,
        train_overrides=train_overrides,
        hubert=shared.hubert if shared is not None else None,
        progress=progress,
    )


def _check_model_zip(zip_path: pathlib.Path, name: str, standin: Sequence[str]) -> None:
    """The zip holds `<name>.pth` (else RuntimeError); logs its members, and warns when it was trained
    from stand-in weights."""
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    if f"{name}.pth" not in names:
        raise RuntimeError(f"the model zip lacks {name}.pth: {names}")
    if standin:
        from infer.lib.standin import warn_standin

        warn_standin("this model", "trained from stand-in weights: " + ", ".join(standin))
    size = zip_path.stat().st_size / 2**20
    _log.info("model zip: %s (%.1f MB): %s", zip_path.name, size, ", ".join(names))


def _stopped(
    e: BaseException, workspace: Workspace, progress: JobProgress, cancel: threading.Event, sigterm: bool
) -> None:
    """A job that stops on `e` (not a user error): child processes stopped, the final event sent, the
    cause logged. Raises the disk-full error in place of `e` when the disk filled up."""
    if _is_cancel(e):
        cancel.set()  # download threads and the training loop stop too
        n = terminate_children()
        what = "job stopped (SIGTERM)" if sigterm else "job cancelled"
        _log.warning("%s%s", what, f" ({n} child processes stopped)" if n else "")
        progress.finish("canceled")
        return
    terminate_children()
    progress.finish("failed")
    from infer.lib.diskspace import disk_full_error, is_disk_full

    if isinstance(e, Exception) and is_disk_full(e, workspace.root):
        err = disk_full_error(workspace.root, "this job")
        _log.error("%s", err)
        raise err from e
    _log.exception("internal error; the traceback above is for the maintainers")


def _is_cancel(e: BaseException) -> bool:
    """Our CancelledError, Ctrl-C, or cog's cancel exception (matched by name: no cog import here)."""
    return isinstance(e, (CancelledError, KeyboardInterrupt)) or type(e).__name__ == "CancelationException"


def local_audio(items: Sequence[str | os.PathLike[str]]) -> JobInputs:
    """`JobInputs` from command-line items: URLs, dataset zips, audio files, folders (searched for audio)."""
    from infer.lib.audio import AUDIO_EXTENSIONS

    urls: list[str] = []
    zips: list[pathlib.Path] = []
    files: list[pathlib.Path] = []
    for item in items:
        text = str(item)
        if "://" in text or text.startswith("data:"):
            urls.append(text)
            continue
        p = pathlib.Path(text).expanduser()
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in AUDIO_EXTENSIONS
                and not any(x.startswith(".") for x in f.relative_to(p).parts)
            )
            if not found:
                raise UserInputError(f"{p}: no audio files in this folder")
            files += found
        elif p.is_file() and zipfile.is_zipfile(p):
            zips.append(p)
        elif p.is_file():
            files.append(p)
        else:
            raise UserInputError(f"{text}: no such file or folder")
    return JobInputs(urls=tuple(urls), zips=tuple(zips), files=tuple(files))
