import numpy as np

from infer.lib.cache import ArrayCache


def test_cache_keys_on_content_and_settings(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"audio-1")
    cache = ArrayCache(tmp_path / "cache")
    k = cache.key(a, {"method": "pm"})
    assert cache.get(k) is None
    cache.put(k, np.arange(4, dtype=np.float32))
    got = cache.get(k)
    assert got is not None and got.tolist() == [0, 1, 2, 3]
    assert cache.key(a, {"method": "harvest"}) != k
    b = tmp_path / "b.wav"
    b.write_bytes(b"audio-1")  # same bytes, other name: same key
    assert cache.key(b, {"method": "pm"}) == k
    a.write_bytes(b"audio-2")
    assert cache.key(a, {"method": "pm"}) != k


def test_disabled_cache_stores_nothing(tmp_path):
    cache = ArrayCache(None)
    cache.put("k", np.zeros(2))
    assert cache.get("k") is None and not cache.enabled


def test_cache_is_bounded_and_evicts_the_least_recently_used(tmp_path):
    import os

    cache = ArrayCache(tmp_path / "cache", max_bytes=3 * 1200)  # room for three 1 KiB values (+ headers)
    keys = [f"{i:02d}" + "k" * 62 for i in range(3)]
    for i, k in enumerate(keys):
        cache.put(k, np.zeros(256, dtype=np.float32))
        p = cache._path(k, "value")
        os.utime(p, (1000 + i, 1000 + i))  # distinct ages: keys[0] oldest
    assert cache.get(keys[0]) is not None  # a hit makes keys[0] the most recent
    cache.put("ff" + "k" * 62, np.zeros(256, dtype=np.float32))
    assert cache.get(keys[1]) is None  # the least recently used went
    assert cache.get(keys[0]) is not None and cache.get("ff" + "k" * 62) is not None
    total = sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*.npy"))
    assert total <= 3 * 1200


def test_cache_size_env(monkeypatch, tmp_path):
    import pytest

    from infer.lib.errors import ConfigError

    monkeypatch.setenv("RVC_CACHE_MAX_GB", "0.5")
    assert ArrayCache(tmp_path).max_bytes == 1 << 29
    monkeypatch.setenv("RVC_CACHE_MAX_GB", "lots")
    with pytest.raises(ConfigError, match="RVC_CACHE_MAX_GB"):
        ArrayCache(tmp_path)
