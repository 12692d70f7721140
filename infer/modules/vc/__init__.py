"""Voice conversion with a trained RVC model: `VC` (see `infer.modules.vc.vc`)."""

from infer.modules.vc.pipeline import ConversionStats, ConvertParams, WindowConfig
from infer.modules.vc.vc import VC, Conversion, LoadedIndex, LoadedModel, write_audio, write_preview

__all__ = [
    "VC",
    "Conversion",
    "ConversionStats",
    "ConvertParams",
    "LoadedIndex",
    "LoadedModel",
    "WindowConfig",
    "write_audio",
    "write_preview",
]
