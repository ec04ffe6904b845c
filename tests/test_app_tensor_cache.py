"""The tensor cache: images decoded once, reused while their files are unchanged,
rebuilt when a file changes or the cache is damaged, never half-written."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from odenets import files as files_module
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
                                    "wrong count", "skipped out of range"])
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
    elif damage == "wrong count":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "count": 4}))
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "skipped": {"5": "no such file"}}))
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


def test_the_temporary_file_of_a_build_killed_part_way_is_removed(files, tmp_path):
    root, paths = files
    cache = tmp_path / "cache"
    cache.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    old = time.time() - 2 * files_module.IDLE
    temporaries = {name: cache / f".{'0' * 40}.npy.{pid}.0123abcd.tmp"
                   for name, pid in (("killed", dead), ("writing here", os.getpid()))}
    temporaries["writing elsewhere"] = cache / f".{'1' * 40}.npy.{dead}.0123abcd.tmp"  # its file still changes
    for name, path in temporaries.items():
        path.write_bytes(b"part of an entry")
        if name != "writing elsewhere":
            os.utime(path, (old, old))
    load(root, paths, Decoder())
    assert [name for name, path in temporaries.items() if path.exists()] == ["writing here", "writing elsewhere"]
