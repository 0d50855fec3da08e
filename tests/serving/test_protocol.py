"""Request parsing details that need no server: base64 images in v1 bodies."""

from __future__ import annotations

import pytest
from kserve.errors import InvalidInput

from nexus.serving.protocol import parse_v1


@pytest.mark.parametrize(
    ("b64", "expected"),
    [
        ("YWJj", b"abc"),
        ("YWJjZA==", b"abcd"),
        ("***", None),
        ("YWJjZA==YQ", None),  # data after the padding
        ("YW Jj", None),  # whitespace inside
        ("YWJjZ", None),  # a truncated quantum
        ("é", None),  # not ASCII
        (12, None),  # not a string
    ],
)
def test_v1_base64_is_decoded_strictly(b64, expected):
    if expected is None:
        with pytest.raises(InvalidInput, match=r"instances\[0\]"):
            parse_v1({"instances": [{"b64": b64}]})
    else:
        assert parse_v1({"instances": [{"b64": b64}]}).images == [expected]
