"""Speech presence (Silero VAD) and one speaker (resemblyzer) on real audio: joe's speech, another
voice (espeak-ng), white noise and music without a voice. The models are the ones in the wheels."""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.lib.audio import load_audio
from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.lib.speaker import OTHER_SPEAKER, SpeakerEncoder, get_speaker_encoder, main_speaker, reading, similarity
from infer.lib.vad import get_speech_detector, speech_seconds
from infer.modules.train.datacheck import (
    NO_SPEECH,
    OTHER_VOICE,
    check_data,
    dataset_card,
    train_files,
    train_speech,
)


@pytest.fixture(scope="module")
def joe(joe_1min: Path) -> list[Path]:
    return sorted(joe_1min.glob("*.wav"))


@pytest.fixture(scope="module")
def mixed_check(joe: list[Path], other_audio: dict[str, Path]):
    files = [*joe, other_audio["voice"], other_audio["noise"], other_audio["music"]]
    return files, check_data(files)


def test_batched_vad_gives_silero_own_regions(joe: list[Path]) -> None:
    import torch
    from silero_vad import get_speech_timestamps

    det = get_speech_detector()
    x = load_audio(joe[0], 16000)
    short = x[: 16000 * 4]  # shorter than a batched piece: exactly silero's own computation
    ours = det.speech([x, short])
    theirs = [get_speech_timestamps(torch.from_numpy(a), det.model, sampling_rate=16000) for a in (x, short)]
    assert ours[1] == [(t["start"], t["end"]) for t in theirs[1]] and ours[1]
    # 14.7 s in 5 s pieces, each started on the 0.5 s before it: the same speech within a tenth of a second
    theirs_s = sum(t["end"] - t["start"] for t in theirs[0]) / 16000
    assert abs(speech_seconds(ours[0]) - theirs_s) < 0.1
    assert 12.0 < speech_seconds(ours[0]) < 14.7  # pauses between sentences and the file's edges are not speech


def test_noise_music_and_silence_hold_no_speech(other_audio: dict[str, Path]) -> None:
    det = get_speech_detector()
    audios = [load_audio(other_audio[k], 16000) for k in ("noise", "music", "voice")]
    audios.append(np.zeros(16000 * 10, np.float32))
    noise, music, voice, silence = (speech_seconds(r) for r in det.speech(audios))
    assert noise < 1.0 and music < 1.0 and silence == 0.0
    assert voice > 10.0  # espeak's voice is speech


def test_other_voice_noise_and_music_are_named_and_left_out(mixed_check) -> None:
    files, r = mixed_check
    by_name = {f.name: f for f in r.files}
    assert [p.name for p in train_files(r, files)] == [f"joe_00{i}.wav" for i in range(4)]
    for i in range(4):
        f = by_name[f"joe_00{i}.wav"]
        assert f.excluded is None and not f.other_speaker and f.speaker_similarity > 0.9 and f.speech_s > 10
    assert by_name["anna.wav"].excluded == OTHER_VOICE and by_name["anna.wav"].other_speaker
    assert by_name["anna.wav"].speaker_similarity < OTHER_SPEAKER
    assert by_name["noise.wav"].excluded == NO_SPEECH and by_name["music.wav"].excluded == NO_SPEECH
    text = " ".join(r.warnings)
    assert "anna.wav" in text and "noise.wav" in text and "music.wav" in text
    assert 45 < r.speech_s < 56  # joe_1min's speech only (60 s of audio with pauses)
    assert r.main_speaker_share > 0.6 and len(r.centre) == 256
    assert [len(s) for s in train_speech(r)] == [len(by_name[f"joe_00{i}.wav"].speech) for i in range(4)]
    json.dumps(r.to_dict())  # the stage report is plain JSON


def test_keep_other_speakers_keeps_the_voice_but_still_names_it(joe: list[Path], other_audio: dict[str, Path]) -> None:
    r = check_data([*joe[:2], other_audio["voice"], other_audio["music"]], keep_other_speakers=True)
    names = [f.name for f in r.kept]
    assert names == ["joe_000.wav", "joe_001.wav", "anna.wav"]
    anna = next(f for f in r.files if f.name == "anna.wav")
    assert anna.other_speaker and anna.excluded is None
    assert any("anna.wav" in w and "kept" in w for w in r.warnings)


def test_too_little_speech_is_refused_with_the_figure(joe: list[Path], other_audio: dict[str, Path]) -> None:
    with pytest.raises(UserInputError, match=r"only 1[0-9]\.\d s of speech.*at least 30 s") as e:
        check_data([joe[0], other_audio["noise"], other_audio["music"]])
    assert "noise.wav" in str(e.value)
    with pytest.raises(UserInputError, match=r"only 0\.0 s of speech"):
        check_data([other_audio["noise"], other_audio["music"]])


def test_preprocess_drops_segments_without_speech(
    joe: list[Path], other_audio: dict[str, Path], tmp_path: Path
) -> None:
    """joe's speech followed by 20 s of music in one file: the music part gives no training segment."""
    from infer.modules.train.preprocess import preprocess

    x, sr = sf.read(joe[0], dtype="float32")
    m, msr = sf.read(other_audio["music"], dtype="float32")
    assert sr == msr
    mixed = tmp_path / "joe_then_music.wav"
    sf.write(str(mixed), np.concatenate([x, m]), sr, subtype="PCM_16")
    r = check_data([mixed, *joe[1:3]])
    assert 12.0 < r.files[0].speech_s < 15.0
    plain = preprocess([mixed], ExperimentLayout(tmp_path / "plain", "v2"), 40000, trim_silence=False)
    exp = ExperimentLayout(tmp_path / "vad", "v2")
    rep = preprocess([mixed], exp, 40000, trim_silence=False, speech=train_speech(r)[:1])
    f = rep.files[0]
    assert plain.files[0].segments_kept - f.segments_kept == f.segments_no_speech >= 4  # 20 s of music
    assert f.speech_kept_s == pytest.approx(r.files[0].speech_s, abs=0.5) and rep.speech_s == f.speech_kept_s
    assert f.kept_s < 16.0 < plain.files[0].kept_s
    assert any("not speech" in w or "under 25%" in w for w in rep.warnings)


def test_main_speaker_resists_a_minority_and_readings() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(256)
    b = rng.standard_normal(256)

    def unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v)).astype(np.float32)

    embs = [unit(a + 0.1 * rng.standard_normal(256)) for _ in range(3)] + [unit(b), unit(b + 0.05 * a)]
    centre, group = main_speaker(embs, [10, 10, 10, 20, 5])
    assert group == [0, 1, 2] and similarity(centre, unit(a)) > 0.99
    assert reading(0.86) == "0.86: close to the speaker"
    assert reading(0.95).endswith("sounds like the speaker") and reading(0.5).endswith(
        "does not sound like the speaker"
    )


def test_partials_are_spread_and_capped() -> None:
    ps = SpeakerEncoder.partial_starts
    assert ps(0) == [] and ps(100) == [0]
    assert ps(25600 * 3) == [0, 25600, 51200]
    hour = ps(16000 * 3600)
    assert len(hour) == 360 and hour == sorted(set(hour))
    e = get_speaker_encoder().embed([np.zeros(0, np.float32), np.random.default_rng(0).standard_normal(20000)])
    first, second = e
    assert first is None and second is not None and second.shape == (256,) and abs(np.linalg.norm(second) - 1) < 1e-5


def test_dataset_card_lists_every_file(mixed_check) -> None:
    files, r = mixed_check
    pre = {"kept_s": 50.0, "speech_s": 48.0, "files": [{"index": i, "segments_kept": 3} for i in range(4)]}
    card = dataset_card(pre, r)
    assert card is not None
    assert card["speech_s"] == 48.0 and card["n_files_given"] == 7
    assert [f["name"] for f in card["files"]] == [p.name for p in files]
    assert all(f["segments_kept"] == 3 for f in card["files"][:4])
    assert {(x["name"], x["reason"]) for x in card["excluded_files"]} == {
        ("anna.wav", OTHER_VOICE),
        ("noise.wav", NO_SPEECH),
        ("music.wav", NO_SPEECH),
    }
    for f in card["files"]:
        assert {"speech_s", "speaker_similarity", "other_speaker"} <= set(f) and "speech" not in f


def test_keep_other_speakers_reaches_the_options_from_every_front_end(tmp_path: Path) -> None:
    from predict import request_from_inputs
    from tools.train import build_parser, options_from_args

    a = build_parser().parse_args(["x.wav", "--out", str(tmp_path / "x.zip"), "--keep-other-speakers"])
    assert options_from_args(a).keep_other_speakers is True
    a = build_parser().parse_args(["x.wav", "--out", str(tmp_path / "x.zip")])
    assert options_from_args(a).keep_other_speakers is False
    assert request_from_inputs(wav_urls=["https://example.org/a.wav"])[0].keep_other_speakers is False
    options, _ = request_from_inputs(wav_urls=["https://example.org/a.wav"], keep_other_speakers=True)
    assert options.keep_other_speakers is True and options.to_dict()["keep_other_speakers"] is True


def test_voice_quality_reads_the_speaker_and_calls_out_a_wrong_voice(
    mixed_check, joe: list[Path], other_audio: dict[str, Path]
) -> None:
    """A perfect "conversion" (the held-out original itself) reads as the speaker; another voice as
    preview is far below the original and the log says so; stand-in weights are named as the reason."""
    from infer.modules.train.quality import voice_quality

    _, r = mixed_check
    centre = r.centre_array()
    held = load_audio(joe[3], 16000)[: 16000 * 8]
    q = voice_quality(centre, held, {"preview": (load_audio(joe[3], 40000)[: 40000 * 8], 40000)})
    assert q["heldout_speaker_similarity"] > 0.9 and q["preview_speaker_similarity"] > 0.9
    assert q["preview_reading"].endswith("sounds like the speaker") and q["note"] is None
    wrong = load_audio(other_audio["voice"], 22050)
    handler = logging.handlers.BufferingHandler(capacity=1 << 20)  # keeps every record in .buffer
    records = handler.buffer
    logging.getLogger("rvc.quality").addHandler(handler)
    try:
        q = voice_quality(centre, held, {"preview": (wrong, 22050), "best_preview": (wrong, 22050)})
    finally:
        logging.getLogger("rvc.quality").removeHandler(handler)
    assert q["preview_speaker_similarity"] < 0.7 and q["best_preview_speaker_similarity"] < 0.7
    assert q["preview_reading"].endswith("does not sound like the speaker")
    assert any("much less like the speaker" in r.getMessage() for r in records if r.levelno == logging.WARNING)
    q = voice_quality(centre, held, {"preview": (wrong, 22050)}, standin=["hubert/hubert_base.pt"])
    assert "stand-in" in q["note"]


def test_a_long_file_loses_the_minutes_of_another_voice(joe_10min: Path, tmp_path: Path) -> None:
    """An "interview" in one file: joe, then about two minutes of another voice, then joe again."""
    from tests.support.media import ESPEAK_TEXT, make_espeak_voice

    joe_files = sorted(joe_10min.glob("*.wav"))
    other = make_espeak_voice(tmp_path / "guest.wav", text=" ".join([ESPEAK_TEXT] * 9))
    g, gsr = sf.read(other, dtype="float32")
    parts = [sf.read(p, dtype="float32")[0] for p in joe_files[:10]]
    import soxr

    guest = soxr.resample(g, gsr, 22050).astype(np.float32)
    interview = tmp_path / "interview.wav"
    sf.write(
        str(interview),
        np.concatenate([*parts, guest, *[sf.read(p, dtype="float32")[0] for p in joe_files[10:20]]]),
        22050,
    )
    r = check_data([interview, *joe_files[20:23]])
    f = r.files[0]
    assert f.excluded is None and len(f.minute_similarities) >= 6
    low = [v for v in f.minute_similarities if v < OTHER_SPEAKER]
    assert 1 <= len(low) <= 3 and max(f.minute_similarities) > 0.9
    assert 55 <= f.other_speaker_s <= 190
    kept = speech_seconds([(int(a * 16000), int(b * 16000)) for a, b in f.speech])
    assert kept == pytest.approx(f.speech_s - f.other_speaker_s, abs=0.05)
    assert any("interview.wav: minute(s)" in w for w in r.warnings)
    assert r.speech_s == pytest.approx(sum(c.speech_s - c.other_speaker_s for c in r.files), abs=0.01)
    # the guest's minutes are in no kept region: the middle of the guest part is not speech to train on
    start = sum(len(p) for p in parts) / 22050
    mid = start + len(guest) / 22050 / 2
    assert not any(a <= mid <= b for a, b in f.speech)


def test_main_speaker_scales_to_a_zip_of_many_clips() -> None:
    """10,000 clips (a dataset zip's limit): candidates are spread, memory stays small, the majority wins."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    e = np.stack([a if i % 4 else b for i in range(10_000)]) + 0.05 * rng.standard_normal((10_000, 256))
    e = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    centre, group = main_speaker(list(e), [3.0] * len(e))
    assert len(group) == 7500 and similarity(centre, a) > 0.99


def test_files_are_checked_in_batches_of_bounded_audio(
    joe: list[Path], other_audio: dict[str, Path], monkeypatch
) -> None:
    """Decoding a few files at a time (memory bounded) gives the same report as all at once."""
    import infer.modules.train.datacheck as dc

    files = [*joe, other_audio["voice"], other_audio["music"]]
    whole = check_data(files)
    monkeypatch.setattr(dc, "BATCH_S", 20.0)
    assert dc._batches([14.7, 13.2, 15.2, 16.6, 19.1, 20.0], 20.0) == [[0], [1], [2], [3], [4], [5]]
    assert dc._batches([5, 5, 5, 30, 1], 20.0) == [[0, 1, 2], [3], [4]]
    parts = check_data(files)
    assert [(f.name, f.speech, f.excluded) for f in parts.files] == [
        (f.name, f.speech, f.excluded) for f in whole.files
    ]
    for a, b in zip(parts.files, whole.files, strict=True):
        assert a.speaker_similarity == pytest.approx(b.speaker_similarity, abs=1e-3) if b.speaker_similarity else True
