"""Images of every PIL mode read as the run's channels: one image per mode, each
compared with what the mode's pixels mean (16-bit scaled to 8 bits, palette looked up,
alpha dropped, CMYK as 255 - C - K for pure inks), alone and mixed in one folder."""
import numpy as np
import pytest
from PIL import Image

from odenets.app.data import datasets as data
from odenets.app.data import image_modes
from odenets.app.errors import DataError

H, W = 6, 5
rng = np.random.default_rng(3)
LEVELS = rng.integers(0, 256, (H, W)).astype(np.uint8)
RGB = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
WIDE = rng.integers(0, 65536, (H, W)).astype(np.uint16)  # 16-bit gray, most of it above 255
PALETTE = rng.integers(0, 256, (256, 3)).astype(np.uint8)
INDEX = rng.integers(0, 256, (H, W)).astype(np.uint8)
BITS = rng.integers(0, 2, (H, W)).astype(bool)
INKS = np.array([[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255], [0, 0, 0, 0],
                 [100, 50, 0, 0], [0, 0, 0, 100], [30, 0, 200, 0]], np.uint8)


def luma(rgb):
    """ITU-R 601-2, the weights PIL's L conversion documents."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def cases():
    """mode -> (the image, its pixels as 8-bit RGB, or as gray when it has no colour)."""
    wide16 = np.rint(WIDE / 65535 * 255)
    p = make("P", INDEX)
    p.putpalette(PALETTE.flatten().tolist())
    cmyk = np.resize(INKS, (H * W, 4)).reshape(H, W, 4)
    return {
        "1": (Image.fromarray(BITS), BITS * 255.0),
        "L": (make("L", LEVELS), LEVELS.astype(float)),
        "I;16": (Image.fromarray(WIDE), wide16),
        "I": (Image.fromarray(WIDE.astype(np.int32)), wide16),
        "P": (p, PALETTE[INDEX].astype(float)),
        "LA": (make("LA", np.dstack([LEVELS, 255 - LEVELS])), LEVELS.astype(float)),
        "RGB": (make("RGB", RGB), RGB.astype(float)),
        "RGBA": (make("RGBA", np.dstack([RGB, LEVELS])), RGB.astype(float)),
        "CMYK": (make("CMYK", cmyk), 255.0 - np.minimum(255, cmyk[..., :3].astype(int) + cmyk[..., 3:]).astype(float)),
    }


def make(mode, pixels):
    return Image.frombytes(mode, (W, H), np.ascontiguousarray(pixels).tobytes())


def as_channels(pixels, channels):
    if channels == 3:
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    return pixels if pixels.ndim == 2 else luma(pixels)


@pytest.mark.parametrize("mode", list(cases()))
@pytest.mark.parametrize("channels", [1, 3])
def test_each_mode_converts_to_what_its_pixels_mean(mode, channels):
    image, pixels = cases()[mode]
    assert image.mode == mode
    out = image_modes.convert(image, channels)
    assert out.mode == ("L" if channels == 1 else "RGB") and out.size == (W, H)
    expect = as_channels(pixels, channels)
    np.testing.assert_allclose(np.asarray(out, dtype=float), expect, atol=1.0 if channels == 1 else 0.0)


def test_sixteen_bit_gray_is_scaled_not_clipped():
    image = Image.fromarray(np.array([[0, 257, 32768, 65535]], np.uint16))
    assert image.mode == "I;16"
    assert np.asarray(image.convert("L")).tolist() != [[0, 1, 128, 255]]  # PIL alone clips
    assert np.asarray(image_modes.convert(image, 1)).tolist() == [[0, 1, 128, 255]]


def test_channels_of_a_folder_come_from_its_modes():
    gray = {m: image for m, (image, _) in cases().items() if m in ("1", "L", "I;16", "I", "LA")}
    assert {m: image_modes.channels_of(image) for m, image in gray.items()} == dict.fromkeys(gray, 1)
    assert [image_modes.channels_of(cases()[m][0]) for m in ("P", "RGB", "RGBA", "CMYK")] == [3, 3, 3, 3]
    gray_palette = make("P", INDEX)
    gray_palette.putpalette(np.repeat(np.arange(256, dtype=np.uint8), 3).tolist())
    assert image_modes.channels_of(gray_palette) == 1


def save_all(folder, modes):
    """Each mode's image in a format that keeps the mode (TIFF for I and CMYK, else PNG)."""
    folder.mkdir(parents=True)
    for mode in modes:
        image, _ = cases()[mode]
        image.save(folder / f"{mode.replace(';', '_')}.{'tif' if mode in ('I', 'CMYK') else 'png'}")


@pytest.mark.parametrize("loader", ["cache", "pil"])
def test_mixed_modes_in_one_folder_become_the_runs_channels(tmp_path, loader):
    """A folder mixing gray and colour modes gives a 3-channel input, every image
    converted; one of gray modes only gives a 1-channel input."""
    mixed, gray = ["1", "L", "I;16", "I", "P", "LA", "RGB", "RGBA", "CMYK"], ["1", "L", "I;16", "LA"]
    for root, modes, channels in ((tmp_path / "mixed", mixed, 3), (tmp_path / "gray", gray, 1)):
        save_all(root / "train" / "a", modes)
        save_all(root / "test" / "a", modes)
        for split in ("train", "test"):  # a second class (a folder of one is refused), after a's images
            save_all(root / split / "b", ["L"])
        ds = data.load("imagefolder", str(root), loader=loader, flip=False)
        assert ds.in_chans == channels and ds.chosen["channels"] == channels
        names = sorted(f"{m.replace(';', '_')}.{'tif' if m in ('I', 'CMYK') else 'png'}" for m in modes)
        mean, std = (np.array(v, dtype=np.float32) for v in data._imagenet_stats(channels))
        for i, name in enumerate(names):
            mode = next(m for m in modes if name.startswith(m.replace(";", "_") + "."))
            expect = as_channels(cases()[mode][1], channels).reshape(H, W, channels).transpose(2, 0, 1)
            x, _ = ds.test[i]
            got = (x.numpy() * std[:, None, None] + mean[:, None, None]) * 255
            np.testing.assert_allclose(got, expect, atol=1.01 if channels == 1 else 1e-3, err_msg=mode)


def test_empty_class_folder_is_named_and_hidden_folders_are_not_classes(tmp_path):
    for split in ("train", "test"):
        for c in ("a", "b"):
            save_all(tmp_path / split / c, ["L", "RGB"])
        save_all(tmp_path / split / ".thumbnails", ["L"])
        (tmp_path / split / "a" / ".hidden.png").write_bytes(b"not an image")
    ds = data.load("imagefolder", str(tmp_path))
    assert ds.classes == ["a", "b"] and len(ds.train) == 4
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "train" / "empty")):
        data.load("imagefolder", str(tmp_path))
