"""A finished run is reused, and a checkpoint resumed, only on the data it was trained
on: the same kind and the same files (names, sizes, times), wherever the folder lies."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from odenets.app.commands import cli
from odenets.app.data.identity import identity, mismatch


def image_folder(root, offset):
    """Two classes of 8x8 grayscale PNGs, 8 training and 4 test images each, drawn from ``offset``."""
    rng = np.random.default_rng(offset)
    for split, count in (("train", 8), ("test", 4)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8) // (2 if c == "a" else 1)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    return root


def test_the_identity_follows_the_files_not_the_folders_path(tmp_path):
    a = image_folder(tmp_path / "a", 0)
    before = identity("imagefolder", str(a))
    assert before["files"] == 24 and before == identity("imagefolder", str(a) + "/")
    moved = tmp_path / "moved"
    os.rename(a, moved)
    assert identity("imagefolder", str(moved)) == before
    other = image_folder(tmp_path / "other", 1)
    assert identity("imagefolder", str(other)) != before  # same names and classes, other images
    image = moved / "test" / "b" / "3.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert identity("imagefolder", str(moved)) != before  # a file rewritten
    assert identity("digits", "anywhere") == identity("digits", "data") == {"data": "digits"}
    assert mismatch(None, before) == "" and mismatch(before, before) == ""
    assert "24 files" in mismatch(before, identity("imagefolder", str(other)))


@pytest.mark.slow
def test_a_study_reuses_a_run_only_on_its_own_data(tmp_path, capsys):
    a, b = image_folder(tmp_path / "a", 0), image_folder(tmp_path / "b", 1)
    argv = ["ablate", "--data", "imagefolder", "--model", "resnet8", "--solvers", "euler", "--seeds", "1",
            "--epochs", "1", "--batch-size", "8", "--jobs", "1", "--out", str(tmp_path / "study")]
    assert cli.main([*argv, "--data-dir", str(a)]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--data-dir", str(b)]) == 2
    err = capsys.readouterr().err
    assert "belongs to a run on other data" in err and "Use another --out" in err
    shutil.move(a, tmp_path / "a-moved")  # a rename: the files keep their times
    assert cli.main([*argv, "--data-dir", str(tmp_path / "a-moved")]) == 0
    assert "(reused)" in capsys.readouterr().out
