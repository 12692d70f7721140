"""How close the trained model sounds to the speaker: speaker similarity of its preview.

The training speaker's voice is the data check's centre embedding (`DataCheckReport.centre`, the
dataset's main voice). The preview converts an excerpt of held-out audio (segments the model never
trained on) with the trained model; both the original excerpt and the converted one are embedded
(resemblyzer, speech parts only, `infer.lib.speaker`) and compared with that centre:

- `heldout_speaker_similarity`: the original excerpt, the ceiling (about 0.95+ for clean speech);
- `preview_speaker_similarity`: the final model's conversion; `best_preview_speaker_similarity`:
  the best-epoch model's (lowest held-out mel loss), when there is one.

Each comes with a plain reading (`infer.lib.speaker.reading`, e.g. "0.86: close to the speaker").
A preview more than `FAR_BELOW` under the held-out originals is called out in the log. With stand-in
weights (or the test-only tiny network) the converted audio is not a voice at all: the figure is
honestly low and the reading says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from infer.lib.log import get_logger

_log = get_logger("quality")

SR = 16000
FAR_BELOW = 0.15


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    from infer.lib.audio import resample

    return resample(np.asarray(audio, dtype=np.float32), sr, SR)


def speech_embedding(audio16k: np.ndarray, detector: Any = None, encoder: Any = None) -> np.ndarray | None:
    """The speaker embedding of the speech in `audio16k` (all of it when the VAD finds none)."""
    from infer.lib.speaker import get_speaker_encoder
    from infer.lib.vad import get_speech_detector

    detector = detector or get_speech_detector()
    encoder = encoder or get_speaker_encoder()
    regions = detector.speech([audio16k])[0]
    speech = np.concatenate([audio16k[s:e] for s, e in regions]) if regions else audio16k
    return encoder.embed([speech])[0]


def voice_quality(
    centre: np.ndarray,
    heldout16k: np.ndarray,
    previews: dict[str, tuple[np.ndarray, int]],
    standin: Sequence[str] = (),
    from_scratch: bool = False,
) -> dict[str, Any]:
    """The model card's `quality` figures. `previews`: {"preview"|"best_preview": (audio, rate)}."""
    from infer.lib.speaker import reading, similarity

    out: dict[str, Any] = {
        "encoder": "resemblyzer 0.1.4 GE2E, cosine similarity to the training speaker's centre embedding"
    }
    held = speech_embedding(heldout16k)
    out["heldout_speaker_similarity"] = None if held is None else round(similarity(held, centre), 4)
    for key, (audio, sr) in previews.items():
        e = speech_embedding(to_16k(audio, sr))
        sim = None if e is None else round(similarity(e, centre), 4)
        out[f"{key}_speaker_similarity"] = sim
        out[f"{key}_reading"] = None if sim is None else reading(sim)
    why = None
    if standin:
        why = "trained from stand-in weights (" + ", ".join(standin) + "): the model cannot sound like anyone"
    elif from_scratch:
        why = "trained from scratch (no pretrained G/D): it takes hours of training to sound like a voice"
    out["note"] = why
    sim = out.get("preview_speaker_similarity")
    held_sim = out["heldout_speaker_similarity"]
    if sim is not None:
        msg = f"preview speaker similarity {out['preview_reading']}"
        if held_sim is not None:
            msg += f" (the held-out originals: {held_sim:.2f})"
        if out.get("best_preview_speaker_similarity") is not None:
            msg += f"; best-epoch model {out['best_preview_reading']}"
        if why:
            msg += f"; low because {why}"
        _log.info("%s", msg)
        if held_sim is not None and held_sim - sim > FAR_BELOW and not why:
            _log.warning(
                "the preview sounds much less like the speaker than the held-out originals (%.2f vs %.2f): "
                "train more epochs, or check the dataset (one voice, clean speech)",
                sim,
                held_sim,
            )
    return out
