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
