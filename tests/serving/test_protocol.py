"""Request parsing details that need no server: base64 images in v1 bodies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from nexus.detections import Detections
from nexus.serving.protocol import (
    JsonInferResponse,
    build_v2_response,
    decode_v2_response,
    image_result,
    parse_options,
    parse_v1,
    wants_binary_outputs,
)
from nexus.vision.postprocess import PostprocessOptions


@pytest.mark.parametrize(
    ("b64", "expected"),
    [
        ("YWJj", b"abc"),
        ("YWJjZA==", b"abcd"),
        ("***", None),
        ("YWJjZA==YQ", None),  # data after the padding
        ("YW Jj", None),  # whitespace inside
        ("YWJjZ", None),  # a truncated quantum
        ("YWJjZA=", None),  # short padding
        ("YQ==YQ==", None),  # two padded quanta
        ("YWJj\n", None),  # a line break
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


def _detections(count: int, seed: int) -> Detections:
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 300, (count, 2)).astype(np.float32)
    return Detections(
        xyxy=np.concatenate([corners, corners + rng.uniform(1, 50, (count, 2)).astype(np.float32)], axis=1),
        confidence=rng.uniform(0, 1, count).astype(np.float32),
        class_id=rng.integers(0, 3, count),
        data={"class_name": np.array([f"class-{i}" for i in rng.integers(0, 3, count)])},
    )


@pytest.mark.parametrize(
    ("counts", "request_id", "version"),
    [
        ([3, 0, 5], "req-1", "v7"),
        ([0], None, "v1"),
        ([1], "", "canary"),
        ([40, 2], "x", "v2"),
    ],
)
def test_v2_response_json_matches_kserve(counts, request_id, version):
    results = [image_result(_detections(n, seed), (480, 640)) for seed, n in enumerate(counts)]
    response = build_v2_response("nexus-detector", request_id, results, version)
    assert isinstance(response, JsonInferResponse)
    plain = InferResponse(
        response_id=response.id,
        model_name=response.model_name,
        infer_outputs=response.outputs,
        model_version=response.model_version,
    )
    ours, ours_length = response.to_rest()
    expected, expected_length = plain.to_rest()
    assert (ours, ours_length) == (expected, expected_length)
    documents = [json.loads(text) for text in ours["outputs"][0]["data"]]
    assert [document["num_detections"] for document in documents] == counts
    assert documents == json.loads(json.dumps(results))


@pytest.mark.parametrize(
    "output",
    [
        InferOutput("names", [3], "BYTES", np.array([b"a", "b", "\u00e9"], dtype=object)),
        InferOutput("grid", [2, 2, 2], "INT32", np.arange(8, dtype=np.int32).reshape(2, 2, 2)),
        InferOutput("flags", [2], "BOOL", np.array([True, False])),
        InferOutput("listed", [2], "FP32", [0.5, 1.5]),
    ],
    ids=["bytes and str", "3-d int", "bool", "list data"],
)
def test_json_outputs_of_other_kinds_match_kserve(output):
    ours = JsonInferResponse(response_id="i", model_name="m", infer_outputs=[output]).to_rest()
    kserves = InferResponse(response_id="i", model_name="m", infer_outputs=[output]).to_rest()
    assert ours == kserves


def test_fp16_outputs_in_json_are_refused_as_kserve_does():
    output = InferOutput("half", [2], "FP16", np.array([1, 2], np.float16))
    with pytest.raises(InvalidInput, match="FP16"):
        JsonInferResponse(response_id="i", model_name="m", infer_outputs=[output]).to_rest()


def test_v2_response_asking_for_binary_outputs_goes_through_kserve():
    results = [image_result(_detections(2, 0), (64, 64))]
    response = build_v2_response("m", "r", results, "v1")
    response._use_binary_outputs = True
    body, json_length = response.to_rest()
    assert isinstance(body, bytes) and json_length is not None and json_length < len(body)


def _tensor_response(binary: bool) -> JsonInferResponse:
    rng = np.random.default_rng(3)
    outputs = [
        InferOutput("predictions", [2, 7, 5], "FP32", rng.random((2, 7, 5), dtype=np.float32)),
        InferOutput("protos", [2, 4, 3, 3], "FP32", rng.random((2, 4, 3, 3), dtype=np.float32)),
        InferOutput("ids", [3], "INT64", np.array([4, -1, 9], np.int64)),
    ]
    return JsonInferResponse(
        response_id="r9", model_name="m", infer_outputs=outputs, model_version="v3", use_binary_outputs=binary
    )


@pytest.mark.parametrize("binary", [True, False], ids=["binary outputs", "JSON outputs"])
def test_v2_response_round_trip(binary):
    expected = _tensor_response(binary)
    arrays = {output.name: output.data.copy() for output in expected.outputs}
    body, json_length = expected.to_rest()
    if binary:
        assert isinstance(body, bytes) and json_length is not None
    else:
        body, json_length = json.dumps(body).encode(), None
    decoded = decode_v2_response(body, None if json_length is None else str(json_length), "m")
    assert (decoded.id, decoded.model_name, decoded.model_version) == ("r9", "m", "v3")
    for output in decoded.outputs:
        assert output.data.dtype == arrays[output.name].dtype
        np.testing.assert_array_equal(output.data, arrays[output.name])


_OVERRUN_HEADER = json.dumps(
    {"outputs": [{"name": "a", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}
).encode()


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (_OVERRUN_HEADER + bytes(8), str(len(_OVERRUN_HEADER)), "exceeds the body"),
        (b'{"id": "x"}', None, "outputs"),
        (b"{}", "99", "does not fit"),
    ],
)
def test_v2_response_that_does_not_add_up_is_refused(body, header_length, message):
    with pytest.raises(ValueError, match=message):
        decode_v2_response(body, header_length, "m")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (None, False),
        ({}, False),
        ({"binary_data_output": True}, True),
        ({"binary_data_output": "false"}, False),
    ],
)
def test_binary_outputs_are_asked_for_with_a_true_boolean(parameters, expected):
    request = InferRequest(model_name="m", infer_inputs=[], parameters=parameters)
    assert wants_binary_outputs(request) is expected


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (None, PostprocessOptions()),
        ({"confidence": 0.5, "iou": "0.4"}, PostprocessOptions(conf_threshold=0.5, iou_threshold=0.4)),
        ({"conf": 0.1, "max_det": 5.0}, PostprocessOptions(conf_threshold=0.1, max_detections=5)),
        ({"max_det": "7"}, PostprocessOptions(max_detections=7)),
        ({"classes": 2}, PostprocessOptions(classes=(2,))),
        ({"classes": "0, 3"}, PostprocessOptions(classes=(0, 3))),
        ({"classes": [1, 2.0]}, PostprocessOptions(classes=(1, 2))),
        ({"agnostic": "TRUE"}, PostprocessOptions(agnostic=True)),
        ({"agnostic": 0}, PostprocessOptions(agnostic=False)),
        ({"binary_data_output": True, "priority": 3}, PostprocessOptions()),  # other keys pass unread
    ],
)
def test_request_parameters_are_parsed(parameters, expected):
    assert parse_options(parameters) == expected


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ("confidence=0.4", ["parameters", "object", "str"]),
        ([["confidence", 0.4]], ["parameters", "object", "list"]),
        ({"confidence": "high"}, ["'confidence'", "number", "'high'"]),
        ({"confidence": True}, ["'confidence'", "number", "True"]),
        ({"conf": None}, ["'conf'", "number"]),
        ({"confidence": 1.5}, ["conf_threshold", "[0, 1]"]),
        ({"iou": "nan"}, ["iou_threshold"]),
        ({"max_det": 2.5}, ["'max_det'", "whole number", "2.5"]),
        ({"max_det": 0}, ["max_detections", "at least 1"]),
        ({"max_det": float("inf")}, ["'max_det'", "whole number"]),
        ({"classes": [-1]}, ["'classes'", ">= 0", "-1"]),
        ({"classes": "1,a"}, ["'classes'", "number", "'a'"]),
        ({"classes": [{"id": 1}]}, ["'classes'", "number"]),
        ({"agnostic": "yes"}, ["'agnostic'", "true or false", "'yes'"]),
        ({"agnostic": 2}, ["'agnostic'", "true or false"]),
    ],
)
def test_bad_request_parameters_name_the_problem(parameters, words):
    with pytest.raises(InvalidInput) as raised:
        parse_options(parameters)
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))
