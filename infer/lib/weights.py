"""Model weights: what the pipeline needs and where it comes from.

Weights live under `RVC_WEIGHTS_DIR` (default `<repo>/assets`) in the reference RVC layout; a weight's
*name* is its path relative to that folder:

    hubert/hubert_base.pt                      HuBERT (fairseq checkpoint), always needed
    rmvpe/rmvpe.pt                             RMVPE pitch network, for f0 method rmvpe / rmvpe_gpu
    pretrained/{,f0}{G,D}{32,40,48}k.pth       v1 pretrained generator / discriminator
    pretrained_v2/{,f0}{G,D}{32,40,48}k.pth    v2 pretrained generator / discriminator
    mossformer2/MossFormer2_SE_48K             clearvoice's checkpoint folder (a bundle of 2 files)

`MANIFEST` lists every file with its public source (the Hugging Face hub), its size in bytes and
its sha256 where a published value was found (see the comments beside each entry for the source).
`required_weights` / `base_weights` / `all_weights` name the sets a job, the server's setup and
`tools.download_weights --all` need. `infer.lib.weight_downloader.WeightDownloader` fetches and
verifies them.

Stand-in weights (`python -m tools.make_standin_weights`) are never used implicitly: they are only
found when `RVC_WEIGHTS_DIR` points at a folder that tool wrote, which carries `STANDIN_MANIFEST`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infer.lib.config import SAMPLE_RATES, VERSIONS
from infer.lib.errors import ConfigError, UserInputError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "assets"

RVC_HF = "https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main"
MOSSFORMER2_HF = "https://huggingface.co/alibabasglab/MossFormer2_SE_48K/resolve/main"

HUBERT = "hubert/hubert_base.pt"
RMVPE = "rmvpe/rmvpe.pt"
MOSSFORMER2 = "mossformer2/MossFormer2_SE_48K"

#: File written by `tools.make_standin_weights` at the top of a stand-in weights folder.
STANDIN_MANIFEST = "STANDIN_WEIGHTS.json"

#: f0 methods whose extractor needs `rmvpe/rmvpe.pt` (the others bring their own weights or none).
RMVPE_METHODS: tuple[str, ...] = ("rmvpe", "rmvpe_gpu")


@dataclass(frozen=True)
class WeightFile:
    """One file of the manifest.

    `name`: path relative to the weights folder (also its path under `RVC_WEIGHTS_BASE_URL`).
    `urls`: public sources, tried in order. `size`: bytes, None where no published value was found.
    `sha256`: lowercase hex, None where no published value was found (then size alone is checked).
    `source`: where `size`/`sha256` come from, for humans.
    """

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or ".." in Path(self.name).parts:
            raise ConfigError(f"weight name must be a relative path inside the weights folder, got {self.name!r}")
        if not self.urls:
            raise ConfigError(f"{self.name}: at least one URL is needed")
        if self.size is not None and self.size < 0:
            raise ConfigError(f"{self.name}: size must be >= 0")
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(f"{self.name}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class WeightBundle:
    """A folder of files fetched together (clearvoice's checkpoint folder); `name` is the folder."""

    name: str
    files: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# The manifest. Sizes and sha256 are the Git LFS pointers (`oid sha256:...`, `size ...`) of the files
# at the head of https://huggingface.co/lj1995/VoiceConversionWebUI, read from the hub's commit pages:
#   a74b2b7 "Upload 12 files" (pretrained/ v1, Mar 2023; the D files were not changed since),
#   b9addeb "Upload 12 files" (pretrained/ v1 G files re-uploaded, May 2023),
#   fb2b2c1 "Upload 3 files", 0e58572 "Upload D40k.pth", b234b67 "Upload 2 files" (pretrained_v2 40k),
#   0e0e59b "Upload 8 files", fd2c41c "Upload 4 files" (pretrained_v2 32k/48k, Jun 2023).
# Values after b9addeb/b234b67 were cross-checked against the hub mirror memescreamer/VoiceConversionWebUI
# ("Mirror lj1995/VoiceConversionWebUI @ b2c8cae96e3b") and AnhP/Vietnamese-RVC-Project.
# Unknown (None): the current v1 f0G{32,40,48}k.pth checksums and exact sizes (re-uploaded in b9addeb;
# no published pointer found; the hub lists them at about 72.8, 72.9 and 73.0 MB), and the MossFormer2
# checkpoint (no published pointer found for alibabasglab/MossFormer2_SE_48K; about 221 MB).
# --------------------------------------------------------------------------------------------------

_D_V1 = 109_978_943  # every v1 discriminator file (same network, fp32)
_D_V2 = 142_875_703  # every v2 discriminator file

_RVC_FILES: tuple[tuple[str, str, int | None, str | None, str], ...] = (
    # (name, path on the hub, size, sha256, source)
    (
        HUBERT,
        "hubert_base.pt",
        189_507_909,
        "f54b40fd2802423a5643779c4861af1e9ee9c1564dc9d32f54f20b5ffba7db96",
        "hub LFS pointer (mirror memescreamer/VoiceConversionWebUI 7b1d2ba; also ddPn08/rvc-webui-models)",
    ),
    (
        RMVPE,
        "rmvpe.pt",
        181_184_272,
        "6d62215f4306e3ca278246188607209f09af3dc77ed4232efdd069798c4ec193",
        "hub LFS pointer (duplicate nevreal/RVC_stuff rmvpe.pt; size from a published manifest)",
    ),
    # v1
    ("pretrained/D32k.pth", "pretrained/D32k.pth", _D_V1,
     "2ab20645829460fdad0d3c44254f1ab53c32cae50c22a66c926ae5aa30abda6f", "lj1995 a74b2b7"),
    ("pretrained/D40k.pth", "pretrained/D40k.pth", _D_V1,
     "547f66dbbcd9023b9051ed244d12ab043ba8a4e854b154cc28761ac7c002909b", "lj1995 a74b2b7"),
    ("pretrained/D48k.pth", "pretrained/D48k.pth", _D_V1,
     "8cc013fa60ed9c3f902f5bd99f48c7e3b9352d763d4d3cd6bc241c37b0bfd9ad", "lj1995 a74b2b7"),
    ("pretrained/f0D32k.pth", "pretrained/f0D32k.pth", _D_V1,
     "294db3087236e2c75260d6179056791c9231245daf5d0485545d9e54c4057c77", "mirror memescreamer 1bb20ac"),
    ("pretrained/f0D40k.pth", "pretrained/f0D40k.pth", _D_V1,
     "7d4f5a441594b470d67579958b2fd4c6b992852ded28ff9e72eda67abcebe423", "mirror memescreamer bcb6e04"),
    ("pretrained/f0D48k.pth", "pretrained/f0D48k.pth", _D_V1,
     "1b84c8bf347ad1e539c842e8f2a4c36ecd9e7fb23c16041189e4877e9b07925c", "mirror memescreamer e8a591f"),
    ("pretrained/G32k.pth", "pretrained/G32k.pth", 72_653_893,
     "81817645cde7ed2e2d83f23ef883f33dda564924b497e84d792743912eca4c23", "mirror memescreamer e8a591f"),
    ("pretrained/G40k.pth", "pretrained/G40k.pth", 72_763_063,
     "e428573bda1124b0ae0ae843fd8dcded6027d3993444790b3e9b0100938b2113", "mirror memescreamer e8a591f"),
    ("pretrained/G48k.pth", "pretrained/G48k.pth", 72_850_501,
     "3862a67ea6313e8ffefc05cee6bee656ef3e089442e9ecf4a6618d60721f3e95", "mirror memescreamer e8a591f"),
    ("pretrained/f0G32k.pth", "pretrained/f0G32k.pth", None, None, "no published checksum found"),
    ("pretrained/f0G40k.pth", "pretrained/f0G40k.pth", None, None, "no published checksum found"),
    ("pretrained/f0G48k.pth", "pretrained/f0G48k.pth", None, None, "no published checksum found"),
    # v2
    ("pretrained_v2/D32k.pth", "pretrained_v2/D32k.pth", _D_V2,
     "d8043378cc6619083d385f5a045de09b83fb3bf8de45c433ca863b71723ac3ca", "lj1995 fd2c41c"),
    ("pretrained_v2/D40k.pth", "pretrained_v2/D40k.pth", _D_V2,
     "471378e894e7191f89a94eda8288c5947b16bbe0b10c3f1f17efdb7a1d998242", "lj1995 0e58572 (via mirrors)"),
    ("pretrained_v2/D48k.pth", "pretrained_v2/D48k.pth", _D_V2,
     "db01094a93c09868a278e03dafe8bb781bfcc1a5ba8df168c948bf9168c84d82", "lj1995 fd2c41c"),
    ("pretrained_v2/f0D32k.pth", "pretrained_v2/f0D32k.pth", _D_V2,
     "bd7134e7793674c85474d5145d2d982e3c5d8124fc7bb6c20f710ed65808fa8a", "lj1995 0e0e59b"),
    ("pretrained_v2/f0D40k.pth", "pretrained_v2/f0D40k.pth", _D_V2,
     "6b6ab091e70801b28e3f41f335f2fc5f3f35c75b39ae2628d419644ec2b0fa09", "lj1995 b234b67"),
    ("pretrained_v2/f0D48k.pth", "pretrained_v2/f0D48k.pth", _D_V2,
     "2269b73c7a4cf34da09aea99274dabf99b2ddb8a42cbfb065fb3c0aa9a2fc748", "lj1995 0e0e59b"),
    ("pretrained_v2/G32k.pth", "pretrained_v2/G32k.pth", 73_811_639,
     "869b26a47f75168d6126f64ac39e6de5247017a8658cfd68aca600f7323efb9f", "lj1995 fd2c41c"),
    ("pretrained_v2/G40k.pth", "pretrained_v2/G40k.pth", 72_959_671,
     "a3843da7fde33db1dab176146c70d6c2df06eafe9457f4e3aa10024e9c6a4b69", "lj1995 fb2b2c1"),
    ("pretrained_v2/G48k.pth", "pretrained_v2/G48k.pth", 75_318_967,
     "2e2b1581a436d07a76b10b9d38765f64aa02836dc65c7dee1ce4140c11ea158b", "lj1995 fd2c41c"),
    ("pretrained_v2/f0G32k.pth", "pretrained_v2/f0G32k.pth", 73_950_049,
     "2332611297b8d88c7436de8f17ef5f07a2119353e962cd93cda5806d59a1133d", "lj1995 0e0e59b"),
    ("pretrained_v2/f0G40k.pth", "pretrained_v2/f0G40k.pth", 73_106_273,
     "3b2c44035e782c4b14ddc0bede9e2f4a724d025cd073f736d4f43708453adfcb", "lj1995 b234b67"),
    ("pretrained_v2/f0G48k.pth", "pretrained_v2/f0G48k.pth", 75_465_569,
     "b5d51f589cc3632d4eae36a315b4179397695042edc01d15312e1bddc2b764a4", "lj1995 0e0e59b"),
)  # fmt: skip


def _build_manifest() -> dict[str, WeightFile]:
    files = [
        WeightFile(name, (f"{RVC_HF}/{hub_path}",), size, sha, source)
        for name, hub_path, size, sha, source in _RVC_FILES
    ]
    # clearvoice reads `last_best_checkpoint` (a one-line text file naming the checkpoint) and then the
    # checkpoint it names; the hub repository holds both (as do MossFormer2_SS_16K and the others).
    files += [
        WeightFile(
            f"{MOSSFORMER2}/last_best_checkpoint",
            (f"{MOSSFORMER2_HF}/last_best_checkpoint",),
            None,
            None,
            "no published checksum found (a one-line text file)",
        ),
        WeightFile(
            f"{MOSSFORMER2}/last_best_checkpoint.pt",
            (f"{MOSSFORMER2_HF}/last_best_checkpoint.pt",),
            None,
            None,
            "no published checksum found (about 221 MB)",
        ),
    ]
    return {f.name: f for f in files}


MANIFEST: dict[str, WeightFile] = _build_manifest()
BUNDLES: dict[str, WeightBundle] = {
    MOSSFORMER2: WeightBundle(
        MOSSFORMER2, (f"{MOSSFORMER2}/last_best_checkpoint", f"{MOSSFORMER2}/last_best_checkpoint.pt")
    )
}


# --------------------------------------------------------------------------------------------------
# What a job needs
# --------------------------------------------------------------------------------------------------


def pretrained_names(version: str, sample_rate: str, use_f0: bool) -> tuple[str, str]:
    """The (generator, discriminator) names of the published pretrained pair, e.g.
    `("pretrained_v2/f0G40k.pth", "pretrained_v2/f0D40k.pth")` for ("v2", "40k", True)."""
    if version not in VERSIONS:
        raise UserInputError(f"version must be one of {list(VERSIONS)}, got {version!r}")
    if sample_rate not in SAMPLE_RATES:
        raise UserInputError(f"sample rate must be one of {list(SAMPLE_RATES)}, got {sample_rate!r}")
    folder = "pretrained" if version == "v1" else "pretrained_v2"
    prefix = "f0" if use_f0 else ""
    return f"{folder}/{prefix}G{sample_rate}.pth", f"{folder}/{prefix}D{sample_rate}.pth"


def required_weights(version: str, sample_rate: str, use_f0: bool, f0method: str | None, enhance: bool) -> list[str]:
    """The names a training job needs: HuBERT always, the pretrained G/D pair, RMVPE when the pitch
    method is rmvpe/rmvpe_gpu (and the model uses pitch), MossFormer2 when enhancement is on."""
    g, d = pretrained_names(version, sample_rate, use_f0)
    names = [HUBERT, g, d]
    if use_f0 and f0method in RMVPE_METHODS:
        names.append(RMVPE)
    if enhance:
        names.append(MOSSFORMER2)
    return names


def base_weights() -> list[str]:
    """What `predict.py`'s setup() fetches before any job: HuBERT, RMVPE and the pretrained pair of the
    default variant (`infer.lib.options.DEFAULTS`: v2 48k with pitch)."""
    from infer.lib.options import DEFAULTS

    return [HUBERT, RMVPE, *pretrained_names(DEFAULTS["version"], DEFAULTS["sample_rate"], True)]


def all_weights() -> list[str]:
    """Every name the manifest knows (bundles by their folder name)."""
    in_bundle = {f for b in BUNDLES.values() for f in b.files}
    return [n for n in MANIFEST if n not in in_bundle] + list(BUNDLES)
