import io

import cv2
import numpy as np
import pytest

from nexus.errors import ImageDecodeError
from nexus.vision.image_io import decode_image_bytes, load_image


def encoded(extension=".png", shape=(20, 30, 3)):
    ok, data = cv2.imencode(extension, np.full(shape, 200, np.uint8))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("extension", [".png", ".jpg", ".webp", ".bmp"])
def test_decodes_common_formats(extension):
    assert decode_image_bytes(encoded(extension)).shape == (20, 30, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image", "not a decodable image"),
        (encoded(".jpg")[:40], "not a decodable image"),
    ],
)
def test_bad_bytes_raise_a_clear_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image_bytes(data, name="upload.jpg")


def test_decompression_bomb_is_refused_before_decoding():
    data = encoded(".png", shape=(300, 300, 3))
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        decode_image_bytes(data, max_pixels=10_000)


def test_load_image_from_path_array_and_missing_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encoded())
    assert load_image(path).shape == (20, 30, 3)
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    with pytest.raises(ImageDecodeError, match="no such image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="uint8"):
        load_image(np.zeros((5, 6, 3), np.float32))


def _photo(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth noise: JPEG-coded detail at every frequency, unlike a flat fill."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 2)


def _pil_jpeg(image_bgr: np.ndarray, orientation: int | None = None, mode: str = "RGB") -> bytes:
    from PIL import Image

    picture = Image.fromarray(image_bgr[..., ::-1].copy()).convert(mode)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


JPEG_VARIANTS = {
    "4:2:0 q90": (lambda: cv2.imencode(".jpg", _photo((240, 320, 3)))[1].tobytes(), True),
    "4:4:4 q75": (
        lambda: cv2.imencode(
            ".jpg",
            _photo((96, 130, 3), 1),
            [
                cv2.IMWRITE_JPEG_QUALITY,
                75,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            ],
        )[1].tobytes(),
        True,
    ),
    "progressive, odd size": (
        lambda: cv2.imencode(".jpg", _photo((37, 53, 3), 2), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        True,
    ),
    "grayscale": (lambda: cv2.imencode(".jpg", _photo((64, 48), 3))[1].tobytes(), True),
    "EXIF upright": (lambda: _pil_jpeg(_photo((60, 80, 3), 4), orientation=1), True),
    "EXIF rotated 90": (lambda: _pil_jpeg(_photo((60, 80, 3), 5), orientation=6), False),
    "EXIF mirrored": (lambda: _pil_jpeg(_photo((60, 80, 3), 6), orientation=2), False),
    "CMYK": (lambda: _pil_jpeg(_photo((40, 50, 3), 7), mode="CMYK"), False),
}


@pytest.mark.parametrize("variant", list(JPEG_VARIANTS))
def test_jpegs_decode_to_opencv_pixels(variant, monkeypatch):
    """Plain JPEGs go through the TurboJPEG decoder, rotated and CMYK ones through OpenCV; the pixels
    are OpenCV's either way (EXIF rotation applied)."""
    import simplejpeg

    make, fast = JPEG_VARIANTS[variant]
    data = make()
    calls = []
    decode_jpeg = simplejpeg.decode_jpeg
    monkeypatch.setattr(simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(1) or decode_jpeg(*a, **k))
    decoded = decode_image_bytes(data)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.dtype == np.uint8 and decoded.flags["C_CONTIGUOUS"]
    assert np.array_equal(decoded, expected)
    assert len(calls) == int(fast)


def test_rotated_jpeg_is_turned_upright():
    data = _pil_jpeg(_photo((60, 80, 3)), orientation=6)  # stored 80 wide, displayed 60 wide
    assert decode_image_bytes(data).shape == (80, 60, 3)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_jpeg_is_refused(cut):
    data = cv2.imencode(".jpg", _photo((120, 160, 3)))[1].tobytes()
    with pytest.raises(ImageDecodeError, match="not a decodable image"):
        decode_image_bytes(data[: int(len(data) * cut)], name="cut.jpg")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "exif", [b"Exif\x00\x00not a TIFF header", b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\xff"]
)
def test_jpeg_with_corrupt_exif_decodes_like_opencv(exif):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_photo((40, 60, 3))).save(buffer, "JPEG", exif=exif)
    data = buffer.getvalue()
    assert np.array_equal(
        decode_image_bytes(data), cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    )
    with pytest.raises(ImageDecodeError, match="exceeds the limit"):
        decode_image_bytes(data, max_pixels=100)  # the header's size is still read
