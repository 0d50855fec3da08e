import io

import cv2
import numpy as np
import pytest

from nexus.errors import ImageDecodeError
from nexus.vision.image_io import ScaledImage, decode_image_bytes, decode_image_for_input, load_image
from nexus.vision.letterbox import letterbox


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


@pytest.mark.parametrize(
    ("image_shape", "input_shape", "scaled_shape"),
    [
        ((480, 640), (640, 640), None),  # larger than half its letterbox: decoded whole
        ((480, 640), (320, 320), (240, 320)),  # exactly twice: 1/2
        ((480, 640), (160, 160), (120, 160)),  # 1/4
        ((480, 640), (96, 96), (120, 160)),  # 1/8 (60x80) is below its 72x96 letterbox: 1/4
        ((480, 640), (64, 64), (60, 80)),  # 1/8 is the smallest libjpeg-turbo scale with a fast IDCT
        ((480, 640), (32, 32), (60, 80)),  # never below 1/8
        ((720, 1280), (640, 640), (360, 640)),  # 720p into 640: its letterbox is exactly half
        ((1080, 1920), (640, 640), (540, 960)),  # 1080p: 1/2, not 3/8 (a slow IDCT)
        ((101, 203), (48, 48), (26, 51)),  # odd sizes round up, as libjpeg does
        ((600, 100), (128, 128), (150, 25)),  # tall: its letterbox is 128x21, 1/8 (75x13) too small
    ],
)
def test_jpeg_decodes_at_the_smallest_scale_that_keeps_its_letterbox(image_shape, input_shape, scaled_shape):
    data = cv2.imencode(".jpg", _photo((*image_shape, 3)))[1].tobytes()
    decoded = decode_image_for_input(data, input_shape)
    if scaled_shape is None:
        assert isinstance(decoded, np.ndarray)
        assert np.array_equal(decoded, decode_image_bytes(data))
        return
    assert isinstance(decoded, ScaledImage)
    assert decoded.original_shape == image_shape
    assert decoded.pixels.shape == (*scaled_shape, 3) and decoded.pixels.dtype == np.uint8


@pytest.mark.parametrize("variant", ["png", "EXIF rotated 90", "EXIF mirrored", "CMYK", "grayscale"])
def test_images_that_cannot_decode_scaled_decode_whole(variant):
    """Only plain upright JPEGs decode scaled; a rotated one must be turned first, so it decodes
    whole (grayscale JPEGs scale, and come out as 3-channel BGR like every other image)."""
    if variant == "png":
        data = cv2.imencode(".png", _photo((200, 240, 3)))[1].tobytes()
    elif variant == "grayscale":
        data = cv2.imencode(".jpg", _photo((200, 240)))[1].tobytes()
    else:
        data = JPEG_VARIANTS[variant][0]()
    decoded = decode_image_for_input(data, (16, 16))
    if variant == "grayscale":
        assert isinstance(decoded, ScaledImage) and decoded.pixels.shape == (25, 30, 3)
        return
    assert isinstance(decoded, np.ndarray)
    assert np.array_equal(decoded, decode_image_bytes(data))


def test_scaled_decode_letterboxes_to_nearly_the_pixels_of_a_whole_decode():
    """The network sees almost the same input: libjpeg's scaled IDCT averages what the resize drops."""
    image = _photo((960, 1280, 3))
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    scaled = decode_image_for_input(data, (320, 320))
    assert isinstance(scaled, ScaledImage) and scaled.pixels.shape == (240, 320, 3)
    whole, geometry = letterbox(decode_image_bytes(data), 320)
    from_scaled = np.empty_like(whole)
    from nexus.vision.letterbox import letterbox_into

    letterbox_into(scaled.pixels, geometry, from_scaled)
    difference = np.abs(whole.astype(np.int16) - from_scaled.astype(np.int16))
    assert difference.mean() < 1.5 and np.percentile(difference, 99) <= 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\xff\xd8\xff not really a jpeg", "not a decodable image"),
        (cv2.imencode(".jpg", _photo((400, 400, 3)))[1].tobytes()[:3000], "not a decodable image"),
    ],
)
def test_bad_bytes_for_input_raise_a_clear_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image_for_input(data, (64, 64), name="upload.jpg")


def test_scaled_decode_still_refuses_decompression_bombs():
    data = cv2.imencode(".jpg", _photo((400, 400, 3)))[1].tobytes()
    with pytest.raises(ImageDecodeError, match="400x400 pixels exceeds the limit of 10000"):
        decode_image_for_input(data, (32, 32), max_pixels=10_000)
