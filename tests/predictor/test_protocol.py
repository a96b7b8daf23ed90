"""Decoding rejects every malformed request with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest
from kserve import InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

from predictor.errors import BadInput
from predictor.protocol import Instance, Protocol, decode_v1, decode_v2


def v2(*inputs: InferInput) -> InferRequest:
    return InferRequest(model_name="sentiment", infer_inputs=list(inputs))


def text_input(
    data: list[object], shape: list[int] | None = None, dtype: str = "BYTES"
) -> InferInput:
    return InferInput("text", shape if shape is not None else [len(data)], dtype, data)


def test_v1_accepts_strings_and_objects() -> None:
    decoded = decode_v1(
        {"instances": ["good", {"text": "bad"}, {"tweet_url": "https://x.com/a/status/1"}]}, 10
    )
    assert decoded.protocol is Protocol.V1
    assert decoded.instances == [
        Instance(text="good"),
        Instance(text="bad"),
        Instance(tweet_url="https://x.com/a/status/1"),
    ]


def test_v1_parses_raw_bytes() -> None:
    assert decode_v1(b'{"instances": ["hi"]}', 10).instances == [Instance(text="hi")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({}, 'missing field "instances"'),
        ({"instances": "hi"}, '"instances" must be a list'),
        ({"instances": []}, "empty"),
        ({"instances": ["a"] * 11}, "limit is 10"),
        ({"instances": [3]}, "instances[0] must be a string or an object"),
        ({"instances": ["ok", None]}, "got null"),
        ({"instances": ["   "]}, "instances[0] is an empty string"),
        ({"instances": [{"txt": "x"}]}, "exactly one of"),
        ({"instances": [{"text": "x", "tweet_url": "y"}]}, "exactly one of"),
        ({"instances": [{"text": 5}]}, "instances[0].text must be a string, got int"),
        ({"instances": ["x"], "extra": 1}, "unexpected field(s) extra"),
    ],
)
def test_v1_rejections(body: object, message: str) -> None:
    with pytest.raises(BadInput) as err:
        decode_v1(body, 10)
    assert message in err.value.message


def test_v2_accepts_json_and_nx1() -> None:
    decoded = decode_v2(v2(text_input(["a", "b"], [2, 1])), 10)
    assert [i.text for i in decoded.instances] == ["a", "b"]


def test_v2_decodes_utf8_bytes() -> None:
    decoded = decode_v2(v2(text_input([b"caf\xc3\xa9"])), 10)
    assert decoded.instances[0].text == "café"


def test_v2_binary_tensor() -> None:
    inp = InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"one", b"two"], dtype=object), binary_data=True)
    decoded = decode_v2(v2(inp), 10)
    assert [i.text for i in decoded.instances] == ["one", "two"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "missing input 'text'"),
        ([InferInput("words", [1], "BYTES", ["x"])], "missing input 'text'"),
        (
            [text_input(["x"]), InferInput("extra", [1], "BYTES", ["y"])],
            "unexpected input(s) ['extra']",
        ),
        ([text_input([1.0], dtype="FP32")], "must have datatype BYTES, got FP32"),
        ([text_input(["a", "b"], [3])], "has shape [3] but carries 2 element(s)"),
        ([text_input(["a", "b"], [1, 2])], "must have shape [N] or [N, 1]"),
        ([text_input([], [0])], "is empty"),
        ([text_input(["a"] * 11)], "limit is 10"),
        ([text_input([b"\xff\xfe"])], "is not valid UTF-8"),
        ([text_input([7])], "input 'text'[0] must be a string, got int"),
        ([text_input([""])], "is an empty string"),
    ],
)
def test_v2_rejections(inputs: list[InferInput], message: str) -> None:
    with pytest.raises(BadInput) as err:
        decode_v2(v2(*inputs), 10)
    assert message in err.value.message


# --- strings UTF-8 cannot encode (Python's JSON parser lets lone surrogates through) -------
def test_v1_lone_surrogate_is_rejected() -> None:
    with pytest.raises(BadInput, match=r"instances\[1\].text is not valid Unicode"):
        decode_v1({"instances": ["fine", {"text": "a\ud800b"}]}, 10)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (v2(text_input(["a\ud800b"])), "input 'text'[0] is not valid Unicode"),
        (v2(text_input(["ok", "\udfff"])), "input 'text'[1] is not valid Unicode"),
        (
            InferRequest(
                model_name="sentiment", infer_inputs=[text_input(["ok"])], request_id="id\ud800"
            ),
            "request id is not valid Unicode",
        ),
        (v2(InferInput("te\ud800xt", [1], "BYTES", ["ok"])), "inputs[0].name is not valid"),
        (v2(text_input(["ok"], dtype="BY\udc80TES")), "inputs[0].datatype is not valid"),
    ],
)
def test_v2_lone_surrogates_are_rejected_naming_the_field(
    request_: InferRequest, message: str
) -> None:
    with pytest.raises(BadInput) as err:
        decode_v2(request_, 10)
    assert message in err.value.message
    assert "surrogates not allowed" in err.value.message
    err.value.message.encode("utf-8")  # the message itself is always encodable


def test_v2_lone_surrogate_in_an_output_name_is_rejected() -> None:
    request = InferRequest(
        model_name="sentiment",
        infer_inputs=[text_input(["ok"])],
        request_outputs=[RequestedOutput("label\ud800")],
    )
    with pytest.raises(BadInput, match=r"outputs\[0\].name is not valid Unicode"):
        decode_v2(request, 10)
