import numpy as np
import pytest

from infer.lib.fileio import atomic_np_save, atomic_path, atomic_write_text, sha256_file


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "x.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [f.name for f in p.parent.iterdir()] == ["x.txt"]
    assert sha256_file(p) == "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "x.npy"
    atomic_np_save(p, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert np.load(p).tolist() == [0, 1, 2]
    assert [f.name for f in tmp_path.iterdir()] == ["x.npy"]


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644
