"""Wire formats: KServe v1 JSON and Open Inference (v2) tensors <-> plain texts.

Decoding validates everything a client can get wrong and raises `BadInput`
with a message that names the field, so the model code only ever sees a
non-empty list of strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse

from predictor.errors import BadInput
from predictor.prediction import Prediction
from predictor.serving import kserve_compat

TEXT_INPUT = "text"
LABEL_OUTPUT = "label"
PROBS_OUTPUT = "probabilities"
V1_INSTANCE_KEYS = ("text", "tweet_url")


class Protocol(StrEnum):
    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True)
class Instance:
    """One thing to classify: literal text, or a tweet to fetch first."""

    text: str | None = None
    tweet_url: str | None = None


@dataclass(frozen=True)
class Decoded:
    """A validated request: what to classify and how to answer."""

    protocol: Protocol
    instances: list[Instance]
    request: InferRequest | None = None  # v2 only: id, requested outputs, binary flags


def _v1(p: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": p.label,
        "score": p.score,
        "probabilities": p.probabilities,
        "truncated": p.truncated,
    }
    if p.tweet_id is not None:
        out["tweet_id"] = p.tweet_id
        out["author"] = p.author
    return out


def _check_count(n: int, max_instances: int, what: str) -> None:
    if n == 0:
        raise BadInput(f"{what} is empty: send at least one text")
    if n > max_instances:
        raise BadInput(f"{what} has {n} items; the limit is {max_instances} per request")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{where} must be a string, got {_type_name(value)}")
    if not value.strip():
        raise BadInput(f"{where} is an empty string")
    return _unicode(value, where)


def _unicode(value: str, where: str) -> str:
    """Reject strings UTF-8 cannot encode: Python's JSON parser lets lone surrogates
    (`"\\ud800"`, or raw bytes ED A0 80) through, and the tokenizer, the cache key and
    the JSON encoder of the response would each fail on them later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(
            f"{where} is not valid Unicode: {exc.reason} at character {exc.start} "
            "(a lone UTF-16 surrogate); send UTF-8 text"
        ) from None
    return value


def decode_v1(body: object, max_instances: int) -> Decoded:
    """`{"instances": ["text" | {"text": ...} | {"tweet_url": ...}, ...]}`."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput(
            f'request body must be a JSON object with "instances", got {_type_name(body)}'
        )
    extra = sorted(set(body) - {"instances", "parameters"})
    if extra:
        raise BadInput(f'unexpected field(s) {", ".join(extra)}; the v1 body takes "instances"')
    if "instances" not in body:
        raise BadInput('missing field "instances"')
    raw = body["instances"]
    if not isinstance(raw, list):
        raise BadInput(f'"instances" must be a list, got {_type_name(raw)}')
    _check_count(len(raw), max_instances, '"instances"')
    return Decoded(Protocol.V1, [_v1_instance(item, n) for n, item in enumerate(raw)])


def _v1_instance(item: object, n: int) -> Instance:
    where = f"instances[{n}]"
    if isinstance(item, str):
        return Instance(text=_text(item, where))
    if not isinstance(item, dict):
        raise BadInput(
            f'{where} must be a string or an object with "text" or "tweet_url", '
            f"got {_type_name(item)}"
        )
    keys = set(item)
    if len(keys & set(V1_INSTANCE_KEYS)) != 1 or keys - set(V1_INSTANCE_KEYS):
        raise BadInput(
            f'{where} must have exactly one of "text" or "tweet_url", got keys '
            f"{sorted(keys) or 'none'}"
        )
    if "text" in item:
        return Instance(text=_text(item["text"], f"{where}.text"))
    return Instance(tweet_url=_text(item["tweet_url"], f"{where}.tweet_url"))


def decode_v2(request: InferRequest, max_instances: int) -> Decoded:
    """One BYTES input named `text` of shape [N] (or [N, 1]) holding UTF-8 strings."""
    _v2_strings(request)
    names = [i.name for i in request.inputs]
    if TEXT_INPUT not in names:
        raise BadInput(f"missing input '{TEXT_INPUT}'; got {names or 'no inputs'}")
    extra = [n for n in names if n != TEXT_INPUT]
    if extra or len(names) != 1:
        raise BadInput(f"unexpected input(s) {extra or names}; the model takes only '{TEXT_INPUT}'")
    for out in request.request_outputs or []:
        if out.name not in (LABEL_OUTPUT, PROBS_OUTPUT):
            raise BadInput(
                f"unknown output '{out.name}' requested; outputs are "
                f"'{LABEL_OUTPUT}' and '{PROBS_OUTPUT}'"
            )
    inp = request.inputs[0]
    if inp.datatype != "BYTES":
        raise BadInput(f"input '{TEXT_INPUT}' must have datatype BYTES, got {inp.datatype}")
    shape = list(inp.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or min(shape, default=0) < 0:
        raise BadInput(f"input '{TEXT_INPUT}' must have shape [N] or [N, 1], got {shape}")
    values = _v2_values(inp)
    if len(values) != math.prod(shape):
        raise BadInput(
            f"input '{TEXT_INPUT}' has shape {shape} but carries {len(values)} element(s)"
        )
    _check_count(len(values), max_instances, f"input '{TEXT_INPUT}'")
    texts = [_v2_text(v, n) for n, v in enumerate(values)]
    return Decoded(Protocol.V2, [Instance(text=t) for t in texts], request)


def _v2_strings(request: InferRequest) -> None:
    """Every string the response or an error message may echo must be valid Unicode."""
    if request.id is not None:
        _unicode(str(request.id), "request id")
    for n, inp in enumerate(request.inputs):
        _unicode(str(inp.name), f"inputs[{n}].name")
        _unicode(str(inp.datatype), f"inputs[{n}].datatype")
    for n, out in enumerate(request.request_outputs or []):
        _unicode(str(out.name), f"outputs[{n}].name")


def _v2_values(inp: Any) -> list[object]:
    """The flat elements of the input, from JSON data, gRPC contents or raw bytes."""
    try:
        if not kserve_compat.has_raw_data(inp) and isinstance(inp.data, list):
            flat: list[object] = []
            _flatten(inp.data, flat)
            return flat
        return list(np.asarray(inp.as_numpy(), dtype=object).reshape(-1))
    except BadInput:
        raise
    except Exception as exc:  # malformed binary tensors raise assorted errors in kserve
        raise BadInput(f"input '{TEXT_INPUT}' could not be decoded: {exc}") from None


def _flatten(data: Sequence[object], out: list[object]) -> None:
    for value in data:
        if isinstance(value, list):
            _flatten(value, out)
        else:
            out.append(value)


def _v2_text(value: object, n: int) -> str:
    where = f"input '{TEXT_INPUT}'[{n}]"
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"{exc.reason} at byte {exc.start}"
            raise BadInput(f"{where} is not valid UTF-8: {reason}") from None
    return _text(value, where)


def encode_v1(predictions: list[Prediction]) -> dict[str, Any]:
    return {"predictions": [_v1(p) for p in predictions]}


def encode_v2(
    decoded: Decoded,
    predictions: list[Prediction],
    labels: list[str],
    model_name: str,
    version: str,
) -> InferResponse:
    """Outputs `label` BYTES [N] and `probabilities` FP32 [N, num_labels]."""
    assert decoded.request is not None
    n = len(predictions)
    probs = np.array([[p.probabilities[lb] for lb in labels] for p in predictions], np.float32)
    label_out = InferOutput(LABEL_OUTPUT, [n], "BYTES")
    label_out.set_data_from_numpy(np.array([p.label for p in predictions], dtype=object), False)
    probs_out = InferOutput(PROBS_OUTPUT, [n, len(labels)], "FP32")
    probs_out.set_data_from_numpy(probs, False)
    outputs = [label_out, probs_out]
    requested = decoded.request.request_outputs
    if requested:
        wanted = {o.name for o in requested}
        outputs = [o for o in outputs if o.name in wanted]
    truncated = [i for i, p in enumerate(predictions) if p.truncated]
    # OIP parameters are scalars on both wires: the indices travel as "0,2" (README)
    parameters: dict[str, Any] = {"truncated_count": len(truncated)}
    if truncated:
        parameters["truncated_indices"] = ",".join(map(str, truncated))
    return InferResponse(
        response_id=decoded.request.id or "",
        model_name=model_name,
        model_version=version,
        infer_outputs=outputs,
        parameters=parameters,
        from_grpc=decoded.request.from_grpc,
        use_binary_outputs=decoded.request.use_binary_outputs,
        requested_outputs=requested,
    )
