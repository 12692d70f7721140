import numpy as np

from infer.lib.cache import ArrayCache


def test_cache_keys_on_content_and_settings(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"audio-1")
    cache = ArrayCache(tmp_path / "cache")
    k = cache.key(a, {"method": "pm"})
    assert cache.get(k) is None
    cache.put(k, np.arange(4, dtype=np.float32))
    assert cache.get(k).tolist() == [0, 1, 2, 3]
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
