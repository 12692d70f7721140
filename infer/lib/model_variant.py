"""Which RVC variant a generator or discriminator state dict is, told from its tensor shapes alone.

A generator's content width gives its version (`enc_p.emb_phone.weight`: 256 -> v1, 768 -> v2), a
pitch embedding (`enc_p.emb_pitch.weight`) its pitch guidance, and its upsampling kernels, noise
convolutions and spectrogram bins its sample rate (compared with the shipped configs of that
version). A discriminator has 1 + 6 sub-discriminators in v1, 1 + 8 in v2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infer.lib.config import CONTENT_DIMS, SAMPLE_RATES, load_config
from infer.lib.models.synthesizer import Synthesizer

CONTENT_VERSIONS = {dim: version for version, dim in CONTENT_DIMS.items()}


@dataclass(frozen=True)
class GeneratorVariant:
    """What a generator state dict is, as far as its shapes tell: version, pitch guidance, sample rate."""

    version: str | None  # "v1" | "v2" | None (unknown content width)
    use_f0: bool
    sample_rate: str | None  # "32k" | "40k" | "48k" | None (non-standard or ambiguous)

    def describe(self) -> str:
        parts = [self.version or "non-standard", self.sample_rate or "(unknown rate)"]
        return " ".join(parts) + (
            " generator with pitch guidance (f0)" if self.use_f0 else " generator without pitch guidance"
        )

    def pretrained_name(self) -> str | None:
        """The published file of this variant, e.g. `pretrained_v2/f0G40k.pth`."""
        if self.version is None or self.sample_rate is None:
            return None
        folder = "pretrained_v2" if self.version == "v2" else "pretrained"
        return f"{folder}/{'f0' if self.use_f0 else ''}G{self.sample_rate}.pth"


def shapes_of(sd: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """{key: shape} of the tensors in a state dict."""
    return {k: tuple(v.shape) for k, v in sd.items() if hasattr(v, "shape")}


def generator_signature(sd: Mapping[str, Any]) -> tuple[Any, ...]:
    """Shape features of a generator state dict that tell the sample rate apart:
    upsampling kernels, noise-conv kernels, spec bins."""
    shapes = shapes_of(sd)
    ups = tuple(shapes[f"dec.ups.{i}.weight_v"][-1] for i in range(16) if f"dec.ups.{i}.weight_v" in shapes)
    noise = tuple(
        shapes[f"dec.noise_convs.{i}.weight"][-1] for i in range(16) if f"dec.noise_convs.{i}.weight" in shapes
    )
    spec = shapes.get("enc_q.pre.weight", (None, None))[1]
    return ups, noise, spec


def _standard_signatures(version: str, use_f0: bool) -> dict[str, tuple[Any, ...]]:
    out = {}
    for sr in SAMPLE_RATES:
        cfg = load_config(version, sr)
        m = cfg.model
        noise: tuple[int, ...] = ()
        if use_f0:
            rates = m.upsample_rates
            noise = tuple(2 * math.prod(rates[i + 1 :]) if i + 1 < len(rates) else 1 for i in range(len(rates)))
        out[sr] = (tuple(m.upsample_kernel_sizes), noise, cfg.data.spec_channels)
    return out


def _signature_matches(sig: tuple[Any, ...], ref: tuple[Any, ...]) -> bool:
    ups, noise, spec = sig
    return ups == ref[0] and noise == ref[1] and (spec is None or spec == ref[2])


def identify_generator(sd: Mapping[str, Any]) -> GeneratorVariant:
    """The variant of a generator state dict (classic key names) from its shapes."""
    shapes = shapes_of(sd)
    emb = shapes.get("enc_p.emb_phone.weight")
    version = CONTENT_VERSIONS.get(emb[1]) if emb is not None and len(emb) == 2 else None
    use_f0 = "enc_p.emb_pitch.weight" in shapes
    sample_rate = None
    if version is not None:
        sig = generator_signature(sd)
        hits = [sr for sr, ref in _standard_signatures(version, use_f0).items() if _signature_matches(sig, ref)]
        sample_rate = hits[0] if len(hits) == 1 else None
    return GeneratorVariant(version, use_f0, sample_rate)


def model_variant(model: Synthesizer) -> GeneratorVariant:
    """The variant of a built generator (version and pitch from its config, the rate from its shapes)."""
    found = identify_generator(model.state_dict())
    return GeneratorVariant(CONTENT_VERSIONS.get(model.content_dim), model.use_f0, found.sample_rate)


def _discriminator_count(keys: Iterable[str]) -> int:
    return len({k.split(".")[1] for k in keys if k.startswith("discriminators.")})


def identify_discriminator(sd: Mapping[str, Any]) -> str | None:
    """ "v1" (1 + 6 sub-discriminators), "v2" (1 + 8) or None."""
    return {7: "v1", 9: "v2"}.get(_discriminator_count(sd))
