"""Smoke test of `make bench` (`python -m bench.run`): the harness runs on a tiny input, not a timing test."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from bench import run as bench_run


def _tiny_data(src: Path, dst: Path, seconds: float = 7.0) -> Path:
    """Two clips of `seconds` cut from the first joe_1min file (preprocessing needs 10 s of speech)."""
    dst.mkdir()
    audio, sr = sf.read(str(sorted(src.glob("*.wav"))[0]), dtype="float32")
    n = int(seconds * sr)
    for i in range(2):
        sf.write(str(dst / f"clip{i}.wav"), audio[i * n : (i + 1) * n], sr)
    return dst


def test_quick_run_writes_table_and_json(tmp_path, joe_1min, capsys):
    data = _tiny_data(Path(joe_1min), tmp_path / "tiny")
    out = tmp_path / "bench.json"
    rc = bench_run.main(["--quick", "--data", str(data), "--stages", "download,preprocess,f0-pm", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    result = json.loads(out.read_text())
    rows = [r for r in result["rows"] if not r.get("summary")]
    assert [r["stage"] for r in rows] == ["download", "preprocess", "f0-pm"]
    for r in rows:
        assert "error" not in r, r
        assert r["wall_s"] > 0 and r["proc_s"] >= r["wall_s"] and r["cpu_s"] > 0
        assert abs(r["rtf"] - r["wall_s"] / 14.0) < 0.01  # 2 x 7 s of audio
        assert 0.01 < r["peak_rss_gb"] < 8
    assert rows[0]["files"] == 2 and rows[1]["segments"] >= 2 and rows[2]["files"] == rows[1]["segments"]
    assert result["device"]["cpu"] and len(result["device"]["loadavg"]) == 3
    assert "| tiny | preprocess |" in printed and "peak RSS GB" in printed


def test_stage_selection_and_summary_against_reference():
    import argparse

    ns = argparse.Namespace(stages="f0,index", skip="f0-harvest", quick=False)
    chosen = bench_run.select_stages(ns, cuda=False)
    assert chosen[0] == "f0-pm" and chosen[-1] == "index"
    assert "f0-harvest" not in chosen and "f0-rmvpe_gpu" not in chosen and "f0-rmvpe" in chosen
    assert "f0-rmvpe_gpu" in bench_run.select_stages(ns, cuda=True)
    walls = {"preprocess": 1.0, "f0-rmvpe": 10.0, "features": 7.0, "index": 0.5}
    rows = [bench_run.row_for("joe_10min", s, {"wall_s": w}, 601.0, [w]) for s, w in walls.items()]
    assert rows[1]["reference_s"] == 175.0 and rows[1]["speedup"] == 17.5
    assert rows[0]["audio_s"] == 601.0 and rows[0]["rtf"] == round(1.0 / 601.0, 5)
    convert = bench_run.row_for("joe_10min", "convert", {"wall_s": 4.0, "audio_s": 8.0}, 601.0, [4.0])
    assert convert["audio_s"] == 8.0 and convert["rtf"] == 0.5  # its own input, not the data set's
    (total,) = bench_run.summaries(rows, "joe_10min", 601.0)
    assert total["wall_s"] == 18.5
    assert total["reference_s"] == 5.7 + 175.0 + 77.0 + 3.5
    assert total["speedup"] == round((5.7 + 175.0 + 77.0 + 3.5) / 18.5, 2)


def test_datacheck_bench_prints_the_ratio(tmp_path, joe_1min, capsys):
    from bench import bench_datacheck

    out = tmp_path / "datacheck.json"
    assert bench_datacheck.main(["--data", str(joe_1min), "--repeat", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["files"] == 4 and 55 < result["audio_s"] < 65
    assert result["check_wall_s"] > 0 and result["preprocess_cpu_s"] > 0 and result["check_vs_preprocess_cpu"] > 0
    assert set(result["check_parts_wall_s"]) == {"decode", "vad", "speaker"}
    assert "| check / preprocess |" in capsys.readouterr().out
