"""The RVC networks: synthesizer (generator) and multi-period discriminator.

Parameter names and shapes equal the reference RVC implementation's, so the published pretrained
files and every RVC / Applio voice model load unchanged (see `infer.lib.checkpoint`).
"""

from infer.lib.models.discriminator import MultiPeriodDiscriminator, build_discriminator
from infer.lib.models.synthesizer import Synthesizer, build_generator

__all__ = ["MultiPeriodDiscriminator", "Synthesizer", "build_discriminator", "build_generator"]
