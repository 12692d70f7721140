"""Safe dataset-zip extraction: nested folders, junk, traversal, links, bombs."""

from __future__ import annotations

import logging
import stat
import struct
import zipfile

import pytest

from infer.lib.audio import load_audio
from infer.lib.dataset_zip import ZipLimits, extract_dataset_zip
from infer.lib.errors import UserInputError
from tests.support.media import make_media


@pytest.fixture(scope="module")
def media(joe_1min, tmp_path_factory):
    return make_media(joe_1min / "joe_001.wav", tmp_path_factory.mktemp("media"), seconds=1.0)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                z.writestr(name, data)
            else:
                z.writestr(name, data)
    return path


def test_mac_zip_with_nested_folders_and_junk(media, tmp_path, caplog):
    z = _zip(
        tmp_path / "dataset.zip",
        [
            ("voice/", b""),
            ("voice/take 1.wav", media["wav"].read_bytes()),
            ("voice/sub/dir/b.mp3", media["mp3"].read_bytes()),
            ("voice/sub/clip.MP4", media["mp4"].read_bytes()),
            ("other/c.flac", media["flac"].read_bytes()),
            ("__MACOSX/voice/._take 1.wav", b"\x00\x05\x16\x07 resource fork"),
            ("voice/.DS_Store", b"Bud1"),
            ("voice/.ipynb_checkpoints/old.wav", media["wav"].read_bytes()),
            ("voice/notes.txt", b"hello"),
            ("cover.jpg", b"\xff\xd8\xff"),
        ],
    )
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="rvc"):
        res = extract_dataset_zip(z, out)
    assert [p.name for p in res.files] == ["000_take_1.wav", "001_b.mp3", "002_clip.mp4", "003_c.flac"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in res.files)
    for p in res.files:
        assert load_audio(p, 16000).size > 10000  # real, decodable audio
    reasons = dict(res.skipped)
    assert reasons["voice/notes.txt"] == "not an audio file" and reasons["cover.jpg"] == "not an audio file"
    assert reasons["__MACOSX/voice/._take 1.wav"] == "junk" and reasons["voice/.ipynb_checkpoints/old.wav"] == "junk"
    assert "voice/notes.txt" in caplog.text and "cover.jpg" in caplog.text
    assert res.to_dict()["files"][0].endswith("000_take_1.wav")


def test_a_member_name_cannot_forge_log_lines(media, tmp_path, caplog):
    z = _zip(tmp_path / "d.zip", [("a.wav", media["wav"].read_bytes()), ("x\nINFO rvc: forged.txt", b"x")])
    with caplog.at_level(logging.INFO, logger="rvc"):
        extract_dataset_zip(z, tmp_path / "out")
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("zip: skipped")]
    assert skipped == ["zip: skipped 'x\\nINFO rvc: forged.txt' (not an audio file)"]


@pytest.mark.parametrize(
    "name,reason",
    [("../evil.wav", "traversal"), ("voice/../../evil.wav", "traversal"), ("/etc/evil.wav", "absolute"),
     ("C:/Windows/evil.wav", "absolute"), ("..\\evil.wav", "traversal")],
)  # fmt: skip
def test_traversal_and_absolute_paths_refused(media, tmp_path, name, reason):
    z = _zip(tmp_path / "bad.zip", [("ok.wav", media["wav"].read_bytes()), (name, media["wav"].read_bytes())])
    out = tmp_path / "out"
    with pytest.raises(UserInputError, match=reason):
        extract_dataset_zip(z, out)
    assert not out.exists()  # refused before anything is written
    assert not (tmp_path / "evil.wav").exists()


def test_symlink_refused(media, tmp_path):
    link = zipfile.ZipInfo("voice/link.wav")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "link.zip", [("voice/a.wav", media["wav"].read_bytes()), (link, b"/etc/passwd")])
    with pytest.raises(UserInputError, match="symbolic link"):
        extract_dataset_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bomb_declared_size_and_member_count(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.wav", b"\x00" * (8 << 20))  # 8 MiB that compresses to a few KiB
    assert z.stat().st_size < 100_000
    with pytest.raises(UserInputError, match="unpack to 8 MiB"):
        extract_dataset_zip(z, tmp_path / "out", ZipLimits(max_total_bytes=4 << 20))
    many = _zip(tmp_path / "many.zip", [(f"{i}.wav", b"RIFF") for i in range(30)])
    with pytest.raises(UserInputError, match="30 entries"):
        extract_dataset_zip(many, tmp_path / "out", ZipLimits(max_members=20))
    assert not (tmp_path / "out").exists()


def test_lying_header_is_caught_while_extracting(tmp_path):
    """Headers claim 1 KiB but the data inflates to 4 MiB: stopped while reading, nothing left behind."""
    z = tmp_path / "liar.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.wav", b"\x01" * (4 << 20))
    data = bytearray(z.read_bytes())
    # patch the uncompressed size in the local header (offset 22) and the central directory (offset 24)
    lh = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, lh + 22, 1024)
    cd = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 1024)
    z.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(UserInputError, match="zip bomb|damaged"):
        extract_dataset_zip(z, out)
    assert list(out.iterdir()) == []


def test_not_a_zip_and_no_audio(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"<html>not a zip</html>")
    with pytest.raises(UserInputError, match="not a valid zip"):
        extract_dataset_zip(bad, tmp_path / "out")
    empty = _zip(tmp_path / "docs.zip", [("a.txt", b"x"), ("__MACOSX/._a.wav", b"x")])
    with pytest.raises(UserInputError, match="no audio files"):
        extract_dataset_zip(empty, tmp_path / "out")
