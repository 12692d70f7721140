"""CPU cost of the data check (speech presence + speaker similarity) against preprocessing.

    .venv/bin/python -m bench.bench_datacheck                        # joe_10min, 3 alternating rounds
    .venv/bin/python -m bench.bench_datacheck --data joe_1min --repeat 5 --out bench/results/x.json

In one process, after loading both models (the Predictor loads them once at boot) and one warm-up
run of each side, rounds alternate A/B: `check_data` on the files (decode at 16 kHz, Silero VAD,
resemblyzer embeddings; `DataCheckReport.seconds` gives the parts) and `preprocess` on the same files
(no enhancement, 40 kHz, as `TrainModules.preprocess`), in a fresh experiment folder each round.
Wall and CPU seconds (`time.process_time`, every thread of the process) per round; the table gives
medians and the check's cost as a percentage of preprocessing's. The load average before and after
is printed: on a shared machine trust CPU seconds more than wall time.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_datacheck", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="joe_10min", help="a folder under ../shared/data, or any folder of wavs")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    a = p.parse_args(argv)

    from bench.common import data_dir, device_info
    from infer.lib.layout import ExperimentLayout
    from infer.lib.speaker import get_speaker_encoder
    from infer.lib.vad import get_speech_detector
    from infer.modules.train.datacheck import check_data
    from infer.modules.train.preprocess import preprocess

    src = data_dir(a.data)
    files = sorted(src.glob("*.wav"))
    if not files:
        raise SystemExit(f"no wav files in {src}")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    det, enc = get_speech_detector(), get_speaker_encoder()
    det.warm_up()
    enc.warm_up()
    load_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="bench-datacheck-"))
    rows: dict[str, list[tuple[float, float]]] = {"check": [], "preprocess": []}
    parts: list[dict[str, float]] = []
    try:
        for r in range(a.repeat + 1):  # round 0 warms both sides up and is not counted
            w, c, rep = _timed(lambda: check_data(files))
            if r:
                rows["check"].append((w, c))
                parts.append(rep.seconds)
            exp = ExperimentLayout(work / f"exp{r}", "v2")
            w, c, _ = _timed(functools.partial(preprocess, files, exp, 40000, trim_silence=True))
            if r:
                rows["preprocess"].append((w, c))
            shutil.rmtree(exp.root, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in rows.items()}
    part_med = {k: round(statistics.median(d[k] for d in parts), 3) for k in parts[0]}
    audio_s = rep.total_duration_s
    result: dict[str, Any] = {
        "data": str(src.name),
        "files": len(files),
        "audio_s": audio_s,
        "models_load_and_warm_up_s": round(load_s, 2),
        "check_wall_s": round(med["check"][0], 3),
        "check_cpu_s": round(med["check"][1], 3),
        "check_parts_wall_s": part_med,
        "preprocess_wall_s": round(med["preprocess"][0], 3),
        "preprocess_cpu_s": round(med["preprocess"][1], 3),
        "check_vs_preprocess_wall": round(med["check"][0] / med["preprocess"][0], 3),
        "check_vs_preprocess_cpu": round(med["check"][1] / med["preprocess"][1], 3),
        "rounds": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in rows.items()},
        "loadavg_before": [round(x, 2) for x in load0],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "device": device_info(),
    }
    print(f"data check vs preprocessing on {src.name} ({len(files)} files, {audio_s:.0f} s), median of {a.repeat}")
    print("| stage | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| data check (decode + VAD + speaker) | {med['check'][0]:.2f} | {med['check'][1]:.2f} |")
    print(f"| preprocess (40k, trim, no enhancement) | {med['preprocess'][0]:.2f} | {med['preprocess'][1]:.2f} |")
    print(
        f"| check / preprocess | {100 * result['check_vs_preprocess_wall']:.0f}% "
        f"| {100 * result['check_vs_preprocess_cpu']:.0f}% |"
    )
    print(f"check parts (wall s): {part_med}; models load + warm-up {load_s:.1f} s (once per process)")
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
