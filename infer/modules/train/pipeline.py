"""`TrainModules`: the training stages on one experiment folder, up to the model zip.

The stages, numbered as in `infer.modules.train.progress.job_stages` (`[stage i/N] name` in the log),
each a plain function call returning a report (timed, logged, and written to
`<exp>/reports/<stage>.json`):

    check audio  every input file probed and its start decoded (before any weight download)
    check speech speech presence and one speaker per file (datacheck.py; before any weights are fetched)
    weights      the weights the job needs, fetched unless present
    preprocess   user audio -> 0_gt_wavs / 1_16k_wavs (+ dataset report)
    features     HuBERT content features -> 3_feature256|768 (+ the mute entry)
    pitch        pitch -> 2a_f0 / 2b-f0nsf (+ the mute entry; models with pitch only)
    train        filelist.txt, then G/D training -> checkpoints, <name>.pth, <name>_best_e<N>.pth
    index        added_IVF<n>_Flat_nprobe_1_<name>_<version>.index
    package      preview.wav, the model card and the model zip (`infer.modules.train.package`)

The first stage of a job, `collect audio` (downloads, zips), is the job runner's
(`infer.modules.train.job.run_job`). `TrainOptions` (`infer.lib.options`) holds every option.
`TrainModules(options, workdir).run(files, out)` runs the stages above.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infer.lib.config import RVCConfig, load_config
from infer.lib.errors import CancelledError, UserInputError
from infer.lib.fileio import atomic_write_text
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger
from infer.lib.options import TrainOptions
from infer.lib.resume_state import SizeCaps, read_resume_state
from infer.modules.train.package import (
    TRAINING_CARD_KEYS,
    card_options,
    index_card,
    make_preview,
    preview_quality,
    relative_paths,
    unpack_checkpoints,
    versions,
    write_model_zip,
)
from infer.modules.train.progress import JobProgress, job_log, job_stages

_log = get_logger("pipeline")

UNTIL_CHOICES: tuple[str, ...] = ("preprocess", "features", "train", "index")
__all__ = ["TrainModules", "TrainOptions"]


@dataclass(frozen=True)
class StageResult:
    """One stage's report (as a dict) and its wall time in seconds."""

    name: str
    seconds: float
    report: dict[str, Any]


@dataclass
class PipelineResult:
    """What `TrainModules.run` produced: the zip (None when stopped early) and each stage's result."""

    zip_path: Path | None
    exp_root: Path
    stages: list[StageResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zip_path": str(self.zip_path) if self.zip_path else None,
            "exp_root": str(self.exp_root),
            "stages": [asdict(s) for s in self.stages],
        }


# --------------------------------------------------------------------------------------------------
# TrainModules
# --------------------------------------------------------------------------------------------------


class TrainModules:
    """Runs the training stages on the experiment folder `workdir` with `options`.

    `weight_paths`: {weight name: path} to use instead of fetching with `WeightDownloader` (tests,
    custom files); names as `infer.lib.weights` ("hubert/hubert_base.pt", "pretrained_v2/f0G40k.pth"...).
    `config`: the network configuration (default `load_config(version, sample_rate)`; tests pass tiny ones).
    `cache`: extraction cache (default `ArrayCache(default_cache_root())`). `cancel`: set to stop.
    `train_overrides`: extra `TrainSettings` fields (log_every, memory_limit_mb, num_workers,
    discriminator_periods...) for tests and benchmarks. `hubert`: a HuBERT already loaded on the
    device (the Predictor's, loaded once in setup); None loads one for the features stage.
    `progress`: the job's stage list and event stream (default: `job_stages`, no listener).
    A `seed` of None becomes a random one (logged); `rmvpe_gpu` without a GPU runs RMVPE on the CPU
    (`fit_to_device`, when the stages run).
    """

    def __init__(
        self,
        options: TrainOptions,
        workdir: str | Path,
        weight_paths: dict[str, Path] | None = None,
        config: RVCConfig | None = None,
        cache: Any = None,
        cancel: threading.Event | None = None,
        weights_settings: Any = None,
        train_overrides: dict[str, Any] | None = None,
        hubert: Any = None,
        progress: JobProgress | None = None,
    ) -> None:
        self.seed: int = secrets.randbelow(2**31) if options.seed is None else options.seed
        if options.seed is None:
            options = dataclasses.replace(options, seed=self.seed)
            _log.info("seed %d (random; pass it as `seed` to repeat this run)", self.seed)
        self.o = options
        self.exp = ExperimentLayout(Path(workdir), options.version)
        self.cfg = config or load_config(options.version, options.sample_rate)
        if (self.cfg.version, self.cfg.sample_rate) != (options.version, options.sample_rate):
            raise UserInputError(
                f"config is {self.cfg.version}/{self.cfg.sample_rate} but the options ask for {options.version}/{options.sample_rate}"
            )
        self._weight_paths = dict(weight_paths) if weight_paths is not None else None
        self._weights_settings = weights_settings
        self._train_overrides = dict(train_overrides or {})
        self._cache = cache
        self.cancel = cancel or threading.Event()
        self.results: list[StageResult] = []
        self.standin: list[str] = []
        self._train_report: dict[str, Any] | None = None
        self._index_path: Path | None = None
        self._preprocess_report: dict[str, Any] | None = None
        self._shared_hubert = hubert
        self._hubert: Any = None
        self._infos: dict[str, dict[str, Any]] | None = None  # probe results by path (check audio)
        self.weights: dict[str, Path] = {}
        self.data_check: Any = None  # the check stage's DataCheckReport
        self._quality: dict[str, Any] | None = None
        self.progress = progress or JobProgress(job_stages(options.use_f0), options.epochs)

    # -- helpers -------------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        from infer.lib.device import pick_device

        return str(pick_device(self.o.device))

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from infer.lib.cache import ArrayCache, default_cache_root

            self._cache = ArrayCache(default_cache_root())
        return self._cache

    def required_weights(self, until: str | None = None) -> list[str]:
        """Weight names the stages up to `until` (None: all) need: `infer.lib.weights.required_weights`
        without the pretrained pair when training from scratch or stopping before training, and only the
        enhancer's when stopping after preprocessing."""
        from infer.lib.weights import MOSSFORMER2, pretrained_names, required_weights

        o = self.o
        names = required_weights(o.version, o.sample_rate, o.use_f0, o.f0method, o.enhance_audio)
        if until == "preprocess":
            return [n for n in names if n == MOSSFORMER2]
        if o.from_scratch or until == "features":
            pair = pretrained_names(o.version, o.sample_rate, o.use_f0)
            names = [n for n in names if n not in pair]
        return names

    def fetch_weights(self, until: str | None = None) -> dict[str, Path]:
        """Paths of every weight the job needs (fetched unless given); records stand-ins in `standin`."""
        from infer.lib.weight_downloader import WeightDownloader, WeightsSettings
        from infer.lib.weights import STANDIN_MANIFEST

        names = self.required_weights(until)
        settings = self._weights_settings or WeightsSettings.from_env()
        if self._weight_paths is not None:
            missing = [n for n in names if n not in self._weight_paths]
            if missing:
                raise UserInputError(f"weights not given: {', '.join(missing)}")
            paths = {n: Path(self._weight_paths[n]) for n in names}
        else:
            paths = WeightDownloader(settings).fetch(names)
        sm = Path(settings.weights_dir) / STANDIN_MANIFEST
        if sm.is_file():
            try:
                files = json.loads(sm.read_text()).get("files", {})
            except (OSError, ValueError):
                files = {}
            wd = Path(settings.weights_dir).resolve()
            for n, p in paths.items():
                listed = n in files or any(f.startswith(n + "/") for f in files)
                if listed and Path(p).resolve() == (wd / n).resolve():
                    self.standin = sorted({*self.standin, n})
        self.weights = paths
        return paths

    def _stage(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.cancel.is_set():
            raise CancelledError(f"cancelled before the {name} stage")
        t0 = time.monotonic()
        with self.progress.stage(name):
            try:
                rep = fn()
            finally:
                from infer.lib.device import release_memory

                release_memory()  # what the stage no longer needs leaves the GPU (a long-lived worker runs many jobs)
        secs = round(time.monotonic() - t0, 3)
        d = rep.to_dict() if hasattr(rep, "to_dict") else (rep if isinstance(rep, dict) else {})
        self.results.append(StageResult(name, secs, d))
        self.exp.reports_dir.mkdir(parents=True, exist_ok=True)
        report = self.exp.reports_dir / f"{name.replace(' ', '_')}.json"
        atomic_write_text(report, json.dumps(d, indent=1, default=str))
        return rep

    def _resume_caps(self) -> SizeCaps:
        """Size caps of the checkpoints a `resume_from` zip may hold for this network."""
        from infer.lib.resume_state import checkpoint_caps

        return checkpoint_caps(self.cfg, self.o.use_f0)

    def check_resume(self) -> dict[str, Any] | None:
        """Validate `resume_from` against the options, before any long work."""
        if not self.o.resume_from:
            return None
        st = read_resume_state(Path(self.o.resume_from), self._resume_caps())
        mine = (self.o.version, self.o.sample_rate, self.o.use_f0)
        theirs = (st.get("version"), st.get("sample_rate"), st.get("use_f0"))
        if mine != theirs:
            raise UserInputError(
                f"resume_from: the zip's model is {theirs[0]}/{theirs[1]} {'with' if theirs[2] else 'without'} pitch, "
                f"but this run asks for {mine[0]}/{mine[1]} {'with' if mine[2] else 'without'} pitch"
            )
        if st["epoch"] >= self.o.epochs:
            raise UserInputError(
                f"resume_from: the zip already holds {st['epoch']} epoch(s); ask for more than {st['epoch']} epochs to continue"
            )
        return st

    # -- stages --------------------------------------------------------------------------------------
    def check_data(self, files: Sequence[str | Path]) -> Any:
        """The check speech stage: speech and speaker of every input file (`datacheck.check_data`); the files
        left out and the speech regions then steer preprocessing. Raises UserInputError on too little speech."""
        from infer.modules.train.datacheck import check_data

        self.data_check = self._stage(
            "check speech", lambda: check_data(files, keep_other_speakers=self.o.keep_other_speakers)
        )
        return self.data_check

    def check_audio(self, files: Sequence[Path]) -> dict[str, Any]:
        """Probe every file and decode its first seconds; one `UserInputError` naming each bad file."""
        from concurrent.futures import ThreadPoolExecutor

        from infer.lib.audio import AudioDecodeError, decode_check, probe_all

        files = [Path(f) for f in files]
        if not files:
            raise UserInputError("no training audio given")
        infos = probe_all(files)

        def check(f: Path) -> str | None:
            try:
                decode_check(f)
            except AudioDecodeError as e:
                return f"  {e}"
            return None

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(files)))) as pool:
            bad = [e for e in pool.map(check, files) if e]
        if bad:
            raise UserInputError(f"{len(bad)} of {len(files)} input file(s) are not readable audio:\n" + "\n".join(bad))
        self._infos = {str(f): i for f, i in zip(files, infos, strict=True)}
        total = sum(float(i.get("duration_s") or 0.0) for i in infos)
        _log.info("%d file(s) readable, %.1f s of audio: %s", len(files), total, ", ".join(f.name for f in files[:20]))
        return {"files": [f.name for f in files], "duration_s": round(total, 3)}

    def preprocess(self, files: Sequence[Path]) -> Any:
        from infer.modules.train.preprocess import preprocess

        enhancer = None
        if self.o.enhance_audio:
            from infer.lib.enhance import get_enhancer
            from infer.lib.weights import MOSSFORMER2

            enhancer = get_enhancer(self.weights[MOSSFORMER2], self.device)
        from infer.lib.device import pick_device, preprocess_segment_seconds

        speech = None
        if self.data_check is not None:
            from infer.modules.train.datacheck import train_speech

            speech = train_speech(self.data_check)
            if len(speech) != len(files):
                raise ValueError(f"the data check kept {len(speech)} file(s), preprocessing got {len(files)}")
        rep = preprocess(
            list(files),
            self.exp,
            self.cfg.sr,
            segment_s=preprocess_segment_seconds(pick_device(self.o.device)),
            enhancer=enhancer,
            trim_silence=self.o.trim_silence,
            speech=speech,
            infos=[self._infos[str(f)] for f in files] if self._infos is not None else None,
        )
        self._preprocess_report = rep.to_dict()
        return rep

    def _features_on(self, exp: ExperimentLayout) -> Any:
        from infer.modules.train.extract_features import extract_features

        if self._shared_hubert is not None:
            return extract_features(exp, self._shared_hubert, self.device, self.cache)
        if self._hubert is None:
            from infer.lib.hubert import load_hubert
            from infer.lib.weights import HUBERT

            self._hubert = load_hubert(self.weights[HUBERT], self.device, half=self.device.startswith("cuda"))
        return extract_features(exp, self._hubert, self.device, self.cache)

    def _f0_on(self, exp: ExperimentLayout, check_voiced: bool = True) -> Any:
        from infer.lib.weights import RMVPE
        from infer.modules.train.extract_f0 import THREADED_METHODS, extract_f0

        rmvpe = self.weights.get(RMVPE)
        # pm/dio/harvest run on the CPU whatever the device: no torch import to find the GPU
        device = "cpu" if self.o.f0method in THREADED_METHODS else self.device
        return extract_f0(exp, self.o.f0method, self.cache, device=device, rmvpe_path=rmvpe, check_voiced=check_voiced)

    def features(self) -> Any:
        from infer.modules.train.filelist import write_mute_audio

        try:
            rep = self._features_on(self.exp)
            if getattr(rep, "standin_weights", False):
                from infer.lib.weights import HUBERT

                self.standin = sorted({*self.standin, HUBERT})
            write_mute_audio(self.exp, self.cfg.sr)
            from infer.modules.train.filelist import mute_layout

            self._features_on(mute_layout(self.exp))
        finally:
            self._hubert = None  # free its memory before training
        return rep

    def f0(self) -> Any:
        from infer.modules.train.filelist import mute_layout, write_mute_audio

        rep = self._f0_on(self.exp)
        mute = mute_layout(self.exp)
        if not (mute.wavs16k_dir / "mute.wav").is_file():
            write_mute_audio(self.exp, self.cfg.sr)
        self._f0_on(mute, check_voiced=False)  # silence by design: no "almost no voiced frames" warning
        return rep

    def filelist(self) -> Any:
        from infer.modules.train.filelist import write_filelist

        atomic_write_text(self.exp.config_path, json.dumps(self.cfg.to_dict(), indent=4, sort_keys=True) + "\n")
        return write_filelist(self.exp, self.o.use_f0, self.o.speaker_id, self.seed)

    def train(self) -> Any:
        from infer.lib.weights import pretrained_names
        from infer.modules.train.train import TrainSettings, train

        if self.o.resume_from:
            unpack_checkpoints(Path(self.o.resume_from), self.exp, self._resume_caps())
        g = d = None
        if not self.o.from_scratch:
            gn, dn = pretrained_names(self.o.version, self.o.sample_rate, self.o.use_f0)
            g, d = str(self.weights[gn]), str(self.weights[dn])
        extras: dict[str, Any] = {"embedder_model": "contentvec", "speakers_id": 1}
        if self._preprocess_report and self._preprocess_report.get("kept_s") is not None:
            extras["dataset_length"] = float(self._preprocess_report["kept_s"])
        settings = TrainSettings(
            exp_root=str(self.exp.root),
            version=self.o.version,
            sample_rate=self.o.sample_rate,
            use_f0=self.o.use_f0,
            name=self.o.experiment_name,
            epochs=self.o.epochs,
            batch_size=self.o.batch_size,
            save_every_epoch=self.o.save_every_epoch,
            pretrained_g=g,
            pretrained_d=d,
            from_scratch=self.o.from_scratch,
            seed=self.seed,
            device=self.o.device,
            world_size=self.o.gpus if self.device.startswith("cuda") else 1,
            learning_rate=self.o.learning_rate,
            holdout=self.o.holdout,
            speaker_id=self.o.speaker_id,
            export_extras=extras,
            **self._train_overrides,
        )
        from infer.lib.device import models_off_gpu

        with models_off_gpu() as moved:  # HuBERT / MossFormer2 kept by a long-lived worker make room
            if moved:
                _log.info("%d shared model(s) moved to the CPU while training runs", moved)
            rep = train(settings, cancel=self.cancel, log_file=str(self.exp.log_path))
        self._train_report = rep.to_dict()
        return rep

    def filelist_and_train(self) -> Any:
        """The train stage: filelist.txt and config.json, then training."""
        self.filelist()
        return self.train()

    def index(self) -> Any:
        from infer.lib.index import train_index

        rep = train_index(self.exp, self.o.experiment_name, seed=self.seed)
        self._index_path = Path(rep.path)
        return rep

    def make_preview(self) -> Path | None:
        """preview.wav (`package.make_preview`) and its speaker similarity for the model card; None when
        the options ask for none or it could not be made."""
        if not self.o.preview or self._train_report is None:
            return None
        preview = make_preview(self.exp, self._train_report, self._index_path, self.weights, self.device, self.o)
        if preview is None:
            return None
        if self.data_check is not None and self.data_check.centre is not None:
            self._quality = preview_quality(
                preview,
                self.data_check.centre_array(),
                self._train_report,
                self._index_path,
                self.standin,
                self.o.from_scratch,
            )
        return preview.path if preview.path.is_file() else None

    def model_card(self, inputs: Sequence[str]) -> dict[str, Any]:
        """The model card; every path in it is relative to the job folder (the experiment's parent)."""
        from infer.modules.train.datacheck import dataset_card

        tr = self._train_report or {}
        card = {
            "name": self.o.experiment_name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": {
                "version": self.o.version,
                "sample_rate": self.o.sample_rate,
                "f0": self.o.use_f0,
                "f0method": self.o.f0method,
                "config": self.cfg.to_dict(),
            },
            "inputs": {"files": [Path(i).name for i in inputs], "options": card_options(self.o)},
            "dataset": dataset_card(self._preprocess_report, self.data_check),
            "quality": self._quality,
            "training": {k: tr.get(k) for k in TRAINING_CARD_KEYS},
            "index": index_card(next((r.report for r in self.results if r.name == "index"), None)),
            "durations_s": {r.name: r.seconds for r in self.results},
            "versions": versions(),
            "standin_weights": bool(self.standin) or bool(tr.get("standin_weights")),
            "standin_weight_names": self.standin,
            "weights": {n: Path(p).name for n, p in self.weights.items()},
        }
        return relative_paths(card, (str(self.exp.root.resolve().parent), str(self.exp.root.parent)))

    def package(self, out: Path, inputs: Sequence[str]) -> Path:
        if self._train_report is None:
            from infer.modules.train.train import REPORT_FILE

            self._train_report = json.loads((self.exp.reports_dir / REPORT_FILE).read_text())
        preview = self.make_preview()
        t0 = time.monotonic()
        card = self.model_card(inputs)
        path = write_model_zip(
            Path(out),
            self.exp,
            self.o.experiment_name,
            card,
            self._train_report,
            self._index_path,
            self.o.include_checkpoints,
            preview,
        )
        _log.info("packaged in %.1fs", time.monotonic() - t0)
        return path

    # -- all of it -----------------------------------------------------------------------------------
    def run(self, inputs: Sequence[str | Path], out: str | Path, until: str | None = None) -> PipelineResult:
        """Run every stage on `inputs` (audio files) and write the zip to `out`; `until` stops early."""
        if until is not None and until not in UNTIL_CHOICES:
            raise UserInputError(f"until must be one of {list(UNTIL_CHOICES)}, got {until!r}")
        files = [Path(f) for f in inputs]
        if not files:
            raise UserInputError("no training audio given")
        self.check_resume()
        self.exp.root.mkdir(parents=True, exist_ok=True)
        self.exp.make_dirs()
        from infer.modules.train.launch import sigterm_sets

        with job_log(self.exp.log_path), sigterm_sets(self.cancel):
            try:
                return self._run(files, Path(out), until)
            except CancelledError as e:
                _log.warning("cancelled: %s", e)
                raise
            except Exception as e:
                from infer.lib.diskspace import disk_full_error, is_disk_full

                if not isinstance(e, UserInputError) and is_disk_full(e, self.exp.root):
                    err = disk_full_error(self.exp.root, "this training job")
                    _log.error("training job failed: %s", err)
                    raise err from e
                _log.error("training job failed: %s", e, exc_info=not isinstance(e, UserInputError))
                raise
            finally:
                from infer.lib.device import release_memory

                release_memory()  # nothing of this job (the preview's models included) stays cached on the GPU

    def fit_to_device(self) -> None:
        """The options as they run here (`TrainOptions.for_device`): `rmvpe_gpu` without a GPU runs RMVPE
        on the CPU, logged."""
        fitted = self.o.for_device(self.device)
        if fitted != self.o:
            _log.warning("f0method %s: no GPU here, running %s on the CPU instead", self.o.f0method, fitted.f0method)
            self.o = fitted

    def _run(self, files: list[Path], out: Path, until: str | None) -> PipelineResult:
        self.fit_to_device()
        _log.info("training job %s: %s", self.o.experiment_name, json.dumps(card_options(self.o)))
        from infer.lib.diskspace import GiB, ensure_free_space
        from infer.modules.train.datacheck import train_files

        self._stage("check audio", lambda: self.check_audio(files))
        if self.data_check is None:
            self.check_data(files)
        else:  # checked before this log file was opened: repeat its findings here
            from infer.modules.train.datacheck import log_report

            log_report(self.data_check)
        kept = train_files(self.data_check, files)
        self._stage("weights", lambda: {"names": [str(n) for n in self.fetch_weights(until)]})
        ensure_free_space(self.exp.root, GiB, "preprocessing and feature extraction")
        self._stage("preprocess", lambda: self.preprocess(kept))
        result = PipelineResult(None, self.exp.root, self.results)
        if until == "preprocess":
            return result
        self._stage("features", self.features)
        if self.o.use_f0:
            self._stage("pitch", self.f0)
        if until == "features":
            return result
        caps = self._resume_caps()
        # a new checkpoint pair is written before the old one goes, plus the exported models
        need = 2 * (caps.checkpoint_g + caps.checkpoint_d) + 2 * caps.best_model
        ensure_free_space(self.exp.root, need, "training checkpoints")
        self._stage("train", self.filelist_and_train)
        if until == "train":
            return result
        self._stage("index", self.index)
        if until == "index":
            return result
        packaged = self._stage("package", lambda: {"path": str(self.package(out, [str(f) for f in files]))})
        result.zip_path = Path(packaged["path"])
        total = sum(r.seconds for r in self.results)
        _log.info(
            "done: %s in %.1fs (%s)",
            result.zip_path,
            total,
            ", ".join(f"{r.name} {r.seconds:.1f}s" for r in self.results),
        )
        return result
