"""The Cog predictor: recordings of one voice in, a zip with a trained RVC voice model out.

`Predictor.setup()` runs once per container: it fetches the base weights when they are not baked
into the image (HuBERT, RMVPE; never more) and loads what every job shares. `Predictor.predict()`
validates every input before any long work, then runs, in order: WavDownloader and the dataset zip
(audio in), WeightDownloader (the pretrained G/D of the chosen variant), AudioEnhancer (optional),
and TrainModules (preprocess, pitch, features, training, index, the zip).

`FileManager` owns the workspace: a fresh folder per prediction, the output archive, and clean-up of
the large intermediates when the job ends, whether it succeeded or not.

Environment (all optional):
- `RVC_WEIGHTS_DIR`, `RVC_WEIGHTS_BASE_URL`, `RVC_OFFLINE`: see `infer/lib/weights.py`.
- `RVC_JOBS_DIR`: where the per-prediction folders go (default: the system temp dir). Several processes
  may share it: each job folder is locked while in use, and only unlocked ones are purged.
- `RVC_CACHE_DIR`: keep the extraction cache there across jobs, bounded by `RVC_CACHE_MAX_GB`
  (default 20, least recently used first); unset, each job's cache is in its folder and goes with it.
- `RVC_ALLOW_PRIVATE_URLS`, `RVC_DOWNLOAD_DEADLINE_S`: see `infer/lib/urls.py`, `infer/lib/wav_downloader.py`.
- `RVC_TEST_TINY_MODEL=1`: TEST ONLY. Trains a tiny network (hidden width 16, 2 layers) so the HTTP
  API and web UI tests finish on CPU. A model trained this way is useless; never set it in production.
"""

import contextlib
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from cog import BasePredictor, CancelationException, Input, Path

from infer.lib.errors import CancelledError, UserInputError
from infer.lib.log import get_logger, setup_logging

log = get_logger("predict")

SAMPLE_RATES = ("32k", "40k", "48k")
VERSIONS = ("v1", "v2")
F0_METHODS = ("pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu")
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 128
URL_SCHEMES = ("http://", "https://", "data:")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TINY_ENV = "RVC_TEST_TINY_MODEL"
JOBS_ENV = "RVC_JOBS_DIR"


# ------------------------------------------------------------------------------------------------
# The validated request
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainRequest:
    """Every Predictor input, checked: what `predict()` hands to the pipeline."""

    wav_urls: tuple[str, ...]
    dataset: pathlib.Path | None
    sample_rate: str
    version: str
    f0method: str
    epochs: int
    batch_size: int | str  # an int >= 1 or "auto"
    enhance_audio: bool
    trim_silence: bool
    experiment_name: str
    save_every_epoch: int
    resume_from: pathlib.Path | None
    include_checkpoints: bool
    seed: int | None
    keep_other_speakers: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["wav_urls"] = [_redact_url(u) for u in self.wav_urls]
        d["dataset"] = self.dataset.name if self.dataset else None
        d["resume_from"] = self.resume_from.name if self.resume_from else None
        return d


def _redact_url(url: str) -> str:
    """A URL safe to log: `infer.lib.urls.redact_url` (no user info, no query)."""
    from infer.lib.urls import redact_url

    return redact_url(url)


def parse_batch_size(value: str | int) -> int | str:
    """`"auto"` or a positive integer (given as text, as the seed's API took it)."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        raise UserInputError(f"batch_size must be a whole number (e.g. 7) or 'auto', got {value!r}") from None
    if not 1 <= n <= MAX_BATCH_SIZE:
        raise UserInputError(f"batch_size must be between 1 and {MAX_BATCH_SIZE} (or 'auto'), got {n}")
    return n


def _check_zip(path: pathlib.Path, what: str) -> pathlib.Path:
    if not path.is_file():
        raise UserInputError(f"{what}: the uploaded file is missing ({path.name})")
    if not zipfile.is_zipfile(path):
        raise UserInputError(f"{what} must be a .zip file; {path.name!r} is not a zip archive")
    return path


def validate_request(
    wav_urls: list[str] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    sample_rate: str = "48k",
    version: str = "v2",
    f0method: str = "rmvpe_gpu",
    epoch: int = 10,
    batch_size: str | int = "7",
    enhance_audio: bool = True,
    trim_silence: bool = True,
    experiment_name: str = "rvc_model",
    save_every_epoch: int = 50,
    resume_from: str | os.PathLike[str] | None = None,
    include_checkpoints: bool = False,
    seed: int | None = None,
    keep_other_speakers: bool = False,
) -> TrainRequest:
    """Check every input (cheap checks only) and return the request, or raise `UserInputError`."""
    urls = tuple(u.strip() for u in (wav_urls or []) if u and u.strip())
    bad = [u for u in urls if not u.lower().startswith(URL_SCHEMES)]
    if bad:
        raise UserInputError(
            "wav_urls must be http(s) URLs or data: URIs; not usable: "
            + ", ".join(repr(_redact_url(u)) for u in bad[:5])
        )
    ds = _check_zip(pathlib.Path(dataset), "dataset") if dataset else None
    if not urls and ds is None:
        raise UserInputError(
            "no training audio: give `wav_urls` (links to recordings of the voice) and/or `dataset` (a zip of them)"
        )
    if sample_rate not in SAMPLE_RATES:
        raise UserInputError(f"sample_rate must be one of {', '.join(SAMPLE_RATES)}, got {sample_rate!r}")
    if version not in VERSIONS:
        raise UserInputError(f"version must be one of {', '.join(VERSIONS)}, got {version!r}")
    if f0method not in F0_METHODS:
        raise UserInputError(f"f0method must be one of {', '.join(F0_METHODS)}, got {f0method!r}")
    if not 1 <= int(epoch) <= MAX_EPOCHS:
        raise UserInputError(f"epoch must be between 1 and {MAX_EPOCHS}, got {epoch}")
    if not 1 <= int(save_every_epoch) <= MAX_EPOCHS:
        raise UserInputError(f"save_every_epoch must be between 1 and {MAX_EPOCHS}, got {save_every_epoch}")
    name = (experiment_name or "").strip()
    if not NAME_RE.match(name):
        raise UserInputError(
            "experiment_name names the files in the zip: 1-64 letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit; got {experiment_name!r}"
        )
    resume = _check_zip(pathlib.Path(resume_from), "resume_from") if resume_from else None
    if seed is not None and not 0 <= int(seed) < 2**32:
        raise UserInputError(f"seed must be between 0 and {2**32 - 1}, got {seed}")
    return TrainRequest(
        wav_urls=urls,
        dataset=ds,
        sample_rate=sample_rate,
        version=version,
        f0method=f0method,
        epochs=int(epoch),
        batch_size=parse_batch_size(batch_size),
        enhance_audio=bool(enhance_audio),
        trim_silence=bool(trim_silence),
        experiment_name=name,
        save_every_epoch=int(save_every_epoch),
        resume_from=resume,
        include_checkpoints=bool(include_checkpoints),
        seed=None if seed is None else int(seed),
        keep_other_speakers=bool(keep_other_speakers),
    )


# ------------------------------------------------------------------------------------------------
# The workspace
# ------------------------------------------------------------------------------------------------
class FileManager:
    """A fresh folder per prediction under `base`, the output archive, and clean-up.

    Layout of one job folder (`<base>/job-<time>-<id>/`):
      inputs/   downloaded and extracted audio      (deleted when the job ends)
      exp/      the experiment folder (reference layout; deleted when the job ends)
      cache/    the extraction cache                (deleted when the job ends; unless RVC_CACHE_DIR)
      out/      the archive returned to the caller  (kept until the next job starts)
      .lock     held (flock) while this process uses the folder: other processes never purge it
    """

    PREFIX = "job-"

    def __init__(self, base: str | os.PathLike[str] | None = None) -> None:
        root = base or os.environ.get(JOBS_ENV) or pathlib.Path(tempfile.gettempdir()) / "rvc-jobs"
        self.base = pathlib.Path(root)
        self.job_dir: pathlib.Path | None = None
        self._lock: Any = None

    def start(self) -> pathlib.Path:
        """Remove what earlier jobs left (their returned archives) and make a fresh, empty job folder."""
        from infer.lib.jobguard import JobLock

        self.base.mkdir(parents=True, exist_ok=True)
        self.job_dir = None
        if self._lock is not None:  # the previous job's archive has been handed over by now
            self._lock.release()
            self._lock = None
        self.purge_previous()
        name = f"{self.PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.job_dir = self.base / name
        self.job_dir.mkdir()
        self._lock = JobLock(self.job_dir).acquire()
        for sub in ("inputs", "exp", "out"):
            (self.job_dir / sub).mkdir()
        return self.job_dir

    def _need(self) -> pathlib.Path:
        if self.job_dir is None:
            raise RuntimeError("FileManager.start() was not called")
        return self.job_dir

    @property
    def inputs_dir(self) -> pathlib.Path:
        return self._need() / "inputs"

    @property
    def exp_dir(self) -> pathlib.Path:
        return self._need() / "exp"

    @property
    def out_dir(self) -> pathlib.Path:
        return self._need() / "out"

    def output_archive(self, name: str) -> pathlib.Path:
        """Where the returned zip goes: `out/<name>.zip`."""
        return self.out_dir / f"{name}.zip"

    @property
    def cache_dir(self) -> pathlib.Path:
        return self._need() / "cache"

    def purge_previous(self) -> None:
        """Delete the other job folders under `base` that no live process holds (their locks are free)."""
        from infer.lib.jobguard import purge_unlocked

        purge_unlocked(self.base, self.PREFIX, keep=self.job_dir)

    def finish(self, success: bool) -> None:
        """Delete the large intermediates; keep `out/` only when the job succeeded."""
        if self.job_dir is None:
            return
        for sub in ("inputs", "exp", "cache"):
            shutil.rmtree(self.job_dir / sub, ignore_errors=True)
        if not success:
            shutil.rmtree(self.job_dir, ignore_errors=True)
            if self._lock is not None:
                self._lock.release()
                self._lock = None


# ------------------------------------------------------------------------------------------------
# Child processes (ffmpeg, DDP workers) and cancellation
# ------------------------------------------------------------------------------------------------
def _children_of(pid: int) -> list[int]:
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
    kids = _children_of(os.getpid())
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
# Stages
# ------------------------------------------------------------------------------------------------
StageCallback = Callable[[int, int, str], None]


class _Stages:
    """Numbered stage headers in the log (`[stage 2/5] ...`) and an optional callback (web UI progress)."""

    def __init__(self, names: list[str], callback: StageCallback | None = None) -> None:
        self.names = names
        self.callback = callback
        self.started = time.monotonic()
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        i = self.names.index(name) + 1
        log.info("[stage %d/%d] %s", i, len(self.names), name)
        if self.callback:
            self.callback(i, len(self.names), name)
        t0 = time.monotonic()
        yield
        self.times[name] = round(time.monotonic() - t0, 2)
        log.info("[stage %d/%d] %s done in %.1fs", i, len(self.names), name, self.times[name])


STAGES = ["check inputs", "collect audio", "fetch weights", "train", "package"]


def tiny_test_config(version: str, sample_rate: str) -> Any:
    """TEST ONLY (`RVC_TEST_TINY_MODEL=1`): the real config with a network small enough for CPU tests."""
    from infer.lib.config import load_config, tiny_network

    cfg = tiny_network(load_config(version, sample_rate))
    # half-length training slices: the (full-size) discriminator's cost follows the slice length
    train = dataclasses.replace(cfg.train, log_interval=1, segment_size=cfg.data.hop_length * 16)
    return dataclasses.replace(cfg, train=train)


def _tiny_mode() -> bool:
    return os.environ.get(TINY_ENV, "").strip().lower() in ("1", "true", "yes")


class Predictor(BasePredictor):
    """Train an RVC voice model from recordings of one voice; returns a zip with the model and index."""

    def setup(self) -> None:
        """Load what every job shares, once: the base weights (fetched only if missing) and the device."""
        setup_logging()
        from infer.lib.device import enable_tf32, pick_device

        self.device = pick_device()
        enable_tf32()
        self.files = FileManager()
        self.shared: dict[str, Any] = {}
        self._setup_shared()
        log.info("setup done: device %s, jobs under %s", self.device, self.files.base)

    def _setup_shared(self) -> None:
        """Fetch the base weights when they are not baked in (HuBERT, RMVPE, the default pretrained pair;
        never more), check that HuBERT and RMVPE load, and load the enhancer once when its weights exist."""
        from infer.lib.weights import WeightDownloader, WeightsSettings, base_weights

        self.weights_settings = WeightsSettings.from_env()
        paths = WeightDownloader(self.weights_settings).fetch(base_weights())
        self.shared.update(_load_shared_models(paths, self.device, self.weights_settings))

    def predict(
        self,
        wav_urls: list[str] | None = Input(  # noqa: B008
            default=None,
            description="Links to recordings of the voice to clone (http/https URLs or data: URIs). Any format "
            "ffmpeg reads works: wav, mp3, flac, ogg, m4a, even video files. Give this, `dataset`, or both.",
        ),
        dataset: Path | None = Input(  # noqa: B008
            default=None,
            description="A zip of recordings of the voice (any folder layout and audio format; junk such as "
            "__MACOSX is skipped). Give this, `wav_urls`, or both.",
        ),
        sample_rate: str = Input(
            default="48k",
            choices=["32k", "40k", "48k"],
            description="Sample rate of the model. 48k for clean studio audio, 40k is the common choice, 32k "
            "for phone-quality recordings.",
        ),
        version: str = Input(
            default="v2",
            choices=["v1", "v2"],
            description="RVC model version. v2 (768-dim HuBERT features) sounds better; v1 for old tools.",
        ),
        f0method: str = Input(
            default="rmvpe_gpu",
            choices=["pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu"],
            description="Pitch extraction method. `rmvpe_gpu` recommended (fast and accurate); `rmvpe` is the "
            "same on CPU; crepe/fcpe are neural alternatives; pm, dio and harvest are classic and faster.",
        ),
        epoch: int = Input(
            default=10,
            ge=1,
            le=1000,
            description="Training epochs (passes over the dataset). 10-20 for a quick test, 100-300 for a "
            "good voice from 10+ minutes of audio.",
        ),
        batch_size: str = Input(
            default="7",
            regex="^\\s*([Aa][Uu][Tt][Oo]|[0-9]+)\\s*$",
            description="Segments per training step: a whole number (e.g. 7) or 'auto' to pick from free GPU "
            "memory. Lower it if training runs out of memory.",
        ),
        enhance_audio: bool = Input(
            default=True,
            description="Remove background noise and reverb with MossFormer2 before training. Turn off for "
            "already clean studio recordings.",
        ),
        trim_silence: bool = Input(
            default=True,
            description="Trim leading and trailing silence from each recording (pauses inside are kept).",
        ),
        experiment_name: str = Input(
            default="rvc_model",
            description="Name of the voice model: names the files in the zip (`<name>.pth`, the index). "
            "Letters, digits, '_', '-' and '.'.",
        ),
        save_every_epoch: int = Input(
            default=50,
            ge=1,
            le=1000,
            description="Save a training checkpoint every N epochs (the last epoch is always saved).",
        ),
        resume_from: Path | None = Input(  # noqa: B008
            default=None,
            description="Continue training from a zip this model returned earlier with include_checkpoints "
            "on. `epoch` counts the total, so pick a larger number than before.",
        ),
        include_checkpoints: bool = Input(
            default=False,
            description="Also put the full training checkpoints (G/D, several hundred MB) in the zip, so "
            "training can continue later with resume_from.",
        ),
        seed: int | None = Input(
            default=None,
            description="Random seed for reproducible training. Leave empty for a random one.",
        ),
        keep_other_speakers: bool = Input(
            default=False,
            description="Files whose voice sounds like another person's (speaker similarity to the dataset's "
            "main voice under 0.70) are named in the log and left out of training; turn this on to keep them.",
        ),
    ) -> Path:
        """Train a voice model and return the zip (model `.pth`, index, reports, preview)."""
        request = validate_request(
            wav_urls=wav_urls,
            dataset=dataset,
            sample_rate=sample_rate,
            version=version,
            f0method=f0method,
            epoch=epoch,
            batch_size=batch_size,
            enhance_audio=enhance_audio,
            trim_silence=trim_silence,
            experiment_name=experiment_name,
            save_every_epoch=save_every_epoch,
            resume_from=resume_from,
            include_checkpoints=include_checkpoints,
            seed=seed,
            keep_other_speakers=keep_other_speakers,
        )
        return Path(self.train(request))

    def train(self, request: TrainRequest, on_stage: StageCallback | None = None) -> pathlib.Path:
        """Run one validated job in a fresh workspace; return the path of the zip (the web UI calls this too)."""
        from infer.lib.jobguard import sigterm_stops

        stages = _Stages(STAGES, on_stage)
        success = False
        cancel = threading.Event()
        self.files.start()
        with sigterm_stops(cancel) as stop:
            try:
                with stages.stage("check inputs"):
                    log.info("inputs: %s", request.to_dict())
                    request = _fit_to_device(request, self.device)
                archive = _run_job(self, request, stages, cancel)
                success = True
                return archive
            except UserInputError as e:
                log.error("%s", e)
                raise
            except (CancelationException, CancelledError, KeyboardInterrupt):
                cancel.set()
                n = terminate_children()
                what = "job stopped (SIGTERM)" if stop.received else "job cancelled"
                log.warning("%s%s", what, f" ({n} child processes stopped)" if n else "")
                raise
            except Exception as e:
                terminate_children()
                from infer.lib.diskspace import disk_full_error, is_disk_full

                if self.files.job_dir is not None and is_disk_full(e, self.files.job_dir):
                    err = disk_full_error(self.files.job_dir, "this job")
                    log.error("%s", err)
                    raise err from e
                log.exception("internal error; the traceback above is for the maintainers")
                raise
            finally:
                self.files.finish(success)


def _fit_to_device(request: TrainRequest, device: Any) -> TrainRequest:
    """`rmvpe_gpu` on a machine without a GPU runs RMVPE on the CPU (same numbers, slower)."""
    if request.f0method == "rmvpe_gpu" and getattr(device, "type", "cpu") != "cuda":
        log.warning("f0method rmvpe_gpu: no GPU here, running RMVPE on the CPU instead")
        return dataclasses.replace(request, f0method="rmvpe")
    return request


def _load_shared_models(paths: dict[str, pathlib.Path], device: Any, settings: Any) -> dict[str, Any]:
    """Load HuBERT once, on the job device (every job's feature stage uses this instance); check that
    RMVPE loads (the pitch stage takes it by path and loads its own copy, so this CPU copy is released);
    load the process's one MossFormer2 enhancer when its weights are present (the pipeline reuses that
    instance through `get_enhancer`). A broken or stand-in file is reported at boot, not mid-job."""
    from infer.lib.hubert import load_hubert
    from infer.lib.rmvpe import load_rmvpe
    from infer.lib.weights import HUBERT, MOSSFORMER2, RMVPE, WeightDownloader

    out: dict[str, Any] = {"weights": dict(paths)}
    t0 = time.monotonic()
    half = getattr(device, "type", str(device)) == "cuda"
    out["hubert"] = load_hubert(paths[HUBERT], device, half=half)
    rmvpe = load_rmvpe(paths[RMVPE], "cpu")
    del rmvpe
    log.info("HuBERT loaded and RMVPE checked in %.1fs", time.monotonic() - t0)
    t0 = time.monotonic()
    from infer.lib.speaker import get_speaker_encoder
    from infer.lib.vad import get_speech_detector

    out["vad"], out["speaker"] = get_speech_detector(), get_speaker_encoder()
    out["vad"].warm_up()
    out["speaker"].warm_up()
    log.info("speech detector (Silero VAD) and speaker encoder (resemblyzer) loaded in %.1fs", time.monotonic() - t0)
    wd = WeightDownloader(settings)
    if not wd.missing([MOSSFORMER2]):
        from infer.lib.enhance import get_enhancer

        out["enhancer"] = get_enhancer(wd.path(MOSSFORMER2), str(device))
        log.info("MossFormer2 enhancer loaded")
    else:
        log.info("MossFormer2 weights not in %s: fetched by the first job that asks for enhancement", wd.weights_dir)
    return out


def _train_modules_class(hubert: Any) -> type:
    """`TrainModules` whose feature stage uses the HuBERT loaded once in `setup()`."""
    from infer.modules.train.pipeline import TrainModules

    if hubert is None:
        return TrainModules

    class SharedModelsTrainModules(TrainModules):
        def _features_on(self, exp: Any) -> Any:
            from infer.modules.train.extract_features import extract_features

            return extract_features(exp, hubert, self.device, cache=self.cache)

    return SharedModelsTrainModules


def _job_cache(files: FileManager) -> Any:
    """The extraction cache: in the job folder (deleted with it) unless RVC_CACHE_DIR (then bounded)."""
    from infer.lib.cache import CACHE_DIR_ENV, ArrayCache

    root = os.environ.get(CACHE_DIR_ENV)
    return ArrayCache(pathlib.Path(root) if root else files.cache_dir)


def _run_job(
    predictor: Predictor, request: TrainRequest, stages: _Stages, cancel: threading.Event | None = None
) -> pathlib.Path:
    """The pipeline proper: audio in (WavDownloader, dataset zip), weights, TrainModules, the zip."""
    import secrets

    from infer.lib.weights import WeightDownloader
    from infer.modules.train.pipeline import TrainOptions
    from infer.modules.train.preprocess import collect_inputs

    TrainModules = _train_modules_class(predictor.shared.get("hubert"))  # noqa: N806

    files = predictor.files
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    options = TrainOptions(
        experiment_name=request.experiment_name,
        version=request.version,
        sample_rate=request.sample_rate,
        use_f0=True,
        f0method=request.f0method,
        epochs=request.epochs,
        batch_size=request.batch_size,
        save_every_epoch=request.save_every_epoch,
        enhance_audio=request.enhance_audio,
        trim_silence=request.trim_silence,
        seed=seed,
        resume_from=str(request.resume_from) if request.resume_from else None,
        include_checkpoints=request.include_checkpoints,
        keep_other_speakers=request.keep_other_speakers,
        # the tiny test network cannot start from the published pretrained G/D (other shapes)
        from_scratch=_tiny_mode(),
    )
    config = tiny_test_config(request.version, request.sample_rate) if _tiny_mode() else None
    if config is not None:
        log.warning("%s=1: training the TEST-ONLY tiny network from scratch; the model will not be usable", TINY_ENV)
    cancel = cancel or threading.Event()
    cache = _job_cache(files)
    modules = TrainModules(
        options,
        files.exp_dir,
        config=config,
        weights_settings=predictor.weights_settings,
        cache=cache,
        cancel=cancel,
    )
    modules.check_resume()  # a wrong resume_from fails here, before any download
    log.info("seed %d", seed)

    with stages.stage("collect audio"):
        from infer.lib.diskspace import GiB, ensure_free_space

        ensure_free_space(files.inputs_dir, GiB, "downloading and unpacking the audio")
        audio = collect_inputs(list(request.wav_urls), request.dataset, files.inputs_dir, cancel=cancel)
        log.info("%d audio file(s) collected", len(audio))
        checked = modules  # speech and speaker per file: too little speech is refused before any download
        checked.check_data(audio)

    with stages.stage("fetch weights"):
        names = modules.required_weights()
        paths = WeightDownloader(predictor.weights_settings).fetch(names)
        modules = TrainModules(
            options,
            files.exp_dir,
            weight_paths=paths,
            config=config,
            weights_settings=predictor.weights_settings,
            cache=cache,
            cancel=cancel,
        )
        modules.adopt_check(checked)

    with stages.stage("train"):
        archive = files.output_archive(request.experiment_name)
        result = modules.run(audio, archive)

    with stages.stage("package"):
        zip_path = pathlib.Path(result.zip_path or archive)
        with zipfile.ZipFile(zip_path) as zf:
            names_in = zf.namelist()
        if f"{request.experiment_name}.pth" not in names_in:
            raise RuntimeError(f"the model zip lacks {request.experiment_name}.pth: {names_in}")
        if modules.standin:
            from infer.lib.standin import warn_standin

            warn_standin("this model", "trained from stand-in weights: " + ", ".join(modules.standin))
        log.info("model zip: %s (%.1f MB): %s", zip_path.name, zip_path.stat().st_size / 2**20, ", ".join(names_in))
    return zip_path
