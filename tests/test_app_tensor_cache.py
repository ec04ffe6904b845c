"""The tensor cache: images decoded once, reused while their files are unchanged,
rebuilt when a file changes or the cache is damaged, never half-written."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from odenets.app.data import tensor_cache


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("ODENETS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    root.mkdir()
    paths = []
    for i in range(5):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return root, paths


class Decoder:
    """Decodes with PIL, counting the files it reads."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return np.asarray(Image.open(path).convert("RGB"))


def load(root, paths, decode):
    return tensor_cache.load(root, paths, (3, 4, 3), decode, {"test": 1}, announce=False)


def expected(paths):
    return np.stack([np.asarray(Image.open(p)).transpose(2, 0, 1) for p in paths])


def entry(tmp_path):
    (npy,) = (tmp_path / "cache").glob("*.npy")
    return npy, npy.with_suffix(".json")


def test_decoded_once_then_memory_mapped(files, tmp_path):
    root, paths = files
    decode = Decoder()
    images, skipped = load(root, paths, decode)
    assert decode.calls == 5 and skipped == {}
    np.testing.assert_array_equal(images, expected(paths))
    again, _ = load(root, paths, decode)
    assert decode.calls == 5 and isinstance(again, np.memmap) and not again.flags.writeable
    np.testing.assert_array_equal(again, expected(paths))
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json", ".npy"]  # no temp files


def test_a_changed_added_or_removed_file_rebuilds(files):
    root, paths = files
    decode = Decoder()
    load(root, paths, decode)
    Image.fromarray(np.zeros((4, 3, 3), np.uint8)).save(paths[2])  # same name, new pixels
    os.utime(paths[2], ns=(1, 10**18))
    images, _ = load(root, paths, decode)
    assert decode.calls == 10 and not images[2].any()
    load(root, paths[:4], decode)
    assert decode.calls == 14


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "bad json", "no json", "json of a list",
                                    "wrong count"])
def test_a_damaged_cache_is_rebuilt_not_trusted(files, tmp_path, damage):
    root, paths = files
    decode = Decoder()
    load(root, paths, decode)
    npy, meta = entry(tmp_path)
    raw = bytearray(npy.read_bytes())
    if damage == "flip a byte":
        raw[-7] ^= 0xFF
        npy.write_bytes(bytes(raw))
    elif damage == "truncate":
        npy.write_bytes(bytes(raw[:-10]))
    elif damage == "bad json":
        meta.write_text("{not json")
    elif damage == "no json":
        meta.unlink()
    elif damage == "json of a list":
        meta.write_text("[1, 2]")
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "count": 4}))
    images, _ = load(root, paths, decode)
    assert decode.calls == 10
    np.testing.assert_array_equal(images, expected(paths))


def test_an_interrupted_build_leaves_nothing(files, tmp_path):
    root, paths = files

    def decode(path):
        if path == paths[3]:
            raise KeyboardInterrupt
        return Decoder()(path)

    with pytest.raises(KeyboardInterrupt):
        load(root, paths, decode)
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreadable_files_are_recorded_and_left_as_zeros(files):
    root, paths = files

    def decode(path):
        if path == paths[1]:
            raise tensor_cache.Unreadable("broken")
        return Decoder()(path)

    images, skipped = load(root, paths, decode)
    assert skipped == {1: "broken"} and not images[1].any()
    assert load(root, paths, Decoder())[1] == {1: "broken"}  # reused, skipped files and all
