"""The v2 binary-data extension, checked before KServe's decoder sees it.

A binary request is a JSON header of `Inference-Header-Content-Length` bytes
followed by the raw tensors, each `parameters.binary_data_size` bytes long.
KServe's decoder (`InferRequest.from_bytes`) trusts all of it: a header
length that is not a number, a size that runs past the body, a BYTES length
prefix that lies or a shape that does not match the data each end in an
uncaught exception (a 500). `check` walks the same structure first and
raises `BadInput` naming the field, so whatever reaches KServe decodes.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson

from predictor.errors import BadInput

HEADER = "inference-header-content-length"
HEADER_B = HEADER.encode()

# Bytes per element of the fixed-size v2 datatypes; BYTES is length-prefixed.
_ITEM_SIZE = {
    "BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "UINT32": 4,
    "INT32": 4, "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8,
}  # fmt: skip


def header_length(values: list[str]) -> int:
    """The JSON part's length from every value of the header the client sent (checked at
    the edge, which sees repeated headers; KServe's decoder sees only one of them)."""
    if len(values) != 1:
        raise BadInput(f"header {HEADER} must be sent once, got it {len(values)} times")
    raw = values[0].strip()
    if not raw.isascii() or not raw.isdigit():
        raise BadInput(f"header {HEADER} must be a non-negative integer, got {raw!r}")
    return int(raw)


def check(body: bytes, json_length: int) -> None:
    """Raise `BadInput` unless the request is one KServe's decoder can take apart."""
    if json_length > len(body):
        raise BadInput(f"header {HEADER} is {json_length} but the body has only {len(body)} bytes")
    try:
        head = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise BadInput(
            f"the JSON part of the request (the first {json_length} bytes, per {HEADER}) "
            f"is not valid JSON: {exc}"
        ) from None
    if not isinstance(head, dict):
        raise BadInput(f"the JSON part must be an object, got {_kind(head)}")
    inputs = head.get("inputs")
    if not isinstance(inputs, list):
        raise BadInput(f'"inputs" must be a list, got {_kind(inputs)}')
    offset = json_length
    for n, spec in enumerate(inputs):
        offset = _check_input(spec, f"inputs[{n}]", body, offset)
    if offset != len(body):
        raise BadInput(
            f"the body has {len(body) - offset} byte(s) after the last binary input; "
            "the binary_data_size values must add up to the data sent"
        )
    outputs = head.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise BadInput(f'"outputs" must be a list, got {_kind(outputs)}')
        for n, out in enumerate(outputs):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadInput(f'outputs[{n}] must be an object with a string "name"')
            _check_parameters(out.get("parameters"), f"outputs[{n}]")


def _check_input(spec: Any, where: str, body: bytes, offset: int) -> int:
    """Check one input; returns where the next input's binary data starts."""
    if not isinstance(spec, dict):
        raise BadInput(f"{where} must be an object, got {_kind(spec)}")
    for key in ("name", "datatype"):
        if not isinstance(spec.get(key), str):
            raise BadInput(f'{where}."{key}" must be a string, got {_kind(spec.get(key))}')
    datatype: str = spec["datatype"]
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise BadInput(f'{where}."shape" must be a list of non-negative integers, got {shape!r}')
    elements = math.prod(shape)
    params = _check_parameters(spec.get("parameters"), where)
    if "data" in spec and spec["data"] is not None:
        return offset
    if "binary_data_size" not in params:
        raise BadInput(f'{where} has neither "data" nor parameters.binary_data_size')
    size = params["binary_data_size"]
    if not _is_int(size) or size < 0:
        raise BadInput(
            f"{where}.parameters.binary_data_size must be a non-negative integer, got {size!r}"
        )
    end = offset + size
    if end > len(body):
        raise BadInput(
            f"{where}.parameters.binary_data_size is {size} but only {len(body) - offset} "
            "byte(s) of binary data are left in the body"
        )
    data = body[offset:end]
    if datatype == "BYTES":
        _check_bytes_elements(data, elements, where)
    elif datatype in _ITEM_SIZE:
        expected = elements * _ITEM_SIZE[datatype]
        if size != expected:
            raise BadInput(
                f"{where} is {datatype} of shape {shape}, which is {expected} bytes, "
                f"but binary_data_size is {size}"
            )
    else:
        raise BadInput(f'{where}."datatype" {datatype!r} is not a v2 datatype')
    return end


def _check_bytes_elements(data: bytes, elements: int, where: str) -> None:
    """BYTES: each element is a 4-byte little-endian length, then that many UTF-8 bytes."""
    pos, count = 0, 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise BadInput(f"{where} element {count}: truncated 4-byte length prefix")
        (length,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if length > len(data) - pos:
            raise BadInput(
                f"{where} element {count}: length prefix {length} runs past the "
                f"{len(data) - pos} byte(s) left in binary_data_size"
            )
        try:
            data[pos : pos + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(
                f"{where} element {count} is not valid UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
        pos += length
        count += 1
    if count != elements:
        raise BadInput(f"{where} has shape with {elements} element(s) but carries {count}")


def _check_parameters(params: Any, where: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadInput(f"{where}.parameters must be an object, got {_kind(params)}")
    return params


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
