"""Hostile requests, one per case, for every wire the predictor speaks.

Each case says what a correct server answers: an HTTP status (or gRPC code)
in the client-error class (or the documented 503) and a phrase the error
message must contain, so a case fails when the answer is right in class but
does not name the problem. The same corpus runs in `make test`
(tests/reliability/test_corpus.py) and under `make reliability`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from tests.fixtures.v2_grpc import infer_request

V1 = "/v1/models/sentiment:predict"
V2 = "/v2/models/sentiment/infer"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Answer:
    """What came back: an HTTP status or a gRPC code name, the content type, the message."""

    status: int | str
    content_type: str
    body: bytes

    def error(self) -> str:
        """The `error` of a JSON body ('' when the body is not one)."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return ""
        return str(parsed.get("error", "")) if isinstance(parsed, dict) else ""


@dataclass(frozen=True)
class Target:
    http_url: str
    grpc_target: str

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.http_url.removeprefix("http://").split(":")
        return host, int(port)


@dataclass(frozen=True)
class Case:
    wire: str  # v1, v2-json, v2-binary, http, grpc
    name: str
    send: Callable[[Target], Answer]
    status: int | str
    says: str  # a phrase the error message must contain (case-insensitive)

    @property
    def id(self) -> str:
        return f"{self.wire}:{self.name}"


# --- senders -----------------------------------------------------------------------------
def post(
    path: str, body: bytes, headers: list[tuple[str, str]] | None = None
) -> Callable[[Target], Answer]:
    def send(t: Target) -> Answer:
        hdrs = headers if headers is not None else [("content-type", "application/json")]
        resp = httpx.post(f"{t.http_url}{path}", content=body, headers=hdrs, timeout=30)
        return Answer(resp.status_code, resp.headers.get("content-type", ""), resp.content)

    return send


def raw_http(data: bytes, wait: float = 10.0) -> Callable[[Target], Answer]:
    """Bytes straight onto a socket, for what no HTTP client would send."""

    def send(t: Target) -> Answer:
        return parse_raw_response(raw_exchange(t.host_port, data, wait))

    return send


def raw_exchange(addr: tuple[str, int], data: bytes, wait: float = 10.0) -> bytes:
    with socket.create_connection(addr, timeout=wait) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close first
            sock.sendall(data)
        return receive(sock, wait, _complete)


def receive(sock: socket.socket, wait: float, done: Callable[[bytes], bool]) -> bytes:
    """What the server sends until `done(received)`, it closes, or `wait` runs out."""
    sock.settimeout(wait)
    out = b""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
        if done(out):
            break
    return out


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_raw_response(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/"):
        return Answer(0, "", raw)  # no HTTP answer at all
    status = int(lines[0].split()[1])
    ctype = ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            ctype = value.strip().decode()
    return Answer(status, ctype, body)


def grpc_raw(payload: bytes, method: str = MODEL_INFER) -> Callable[[Target], Answer]:
    """Arbitrary bytes as the request message of a gRPC method."""

    def send(t: Target) -> Answer:
        with grpc.insecure_channel(t.grpc_target) as channel:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            try:
                call(payload, timeout=30)
            except grpc.RpcError as err:
                code = err.code().name
                details = err.details() or ""
                return Answer(code, "grpc", json.dumps({"error": details}).encode())
        return Answer("OK", "grpc", b"{}")

    return send


# --- bodies ------------------------------------------------------------------------------
def v2_body(data: list[object], **overrides: object) -> bytes:
    tensor: dict[str, object] = {"name": "text", "shape": [len(data)], "datatype": "BYTES"}
    tensor["data"] = data
    body: dict[str, object] = {"inputs": [tensor]}
    for key, value in overrides.items():
        if key in ("name", "shape", "datatype"):
            tensor[key] = value
        else:
            body[key] = value
    return json.dumps(body).encode()


def _bytes_tensor(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary(
    head: object, data: bytes, header: list[str] | None = None
) -> Callable[[Target], Answer]:
    """The v2 binary-data extension: JSON header part, then raw tensor bytes."""
    head_bytes = head if isinstance(head, bytes) else json.dumps(head).encode()
    values = header if header is not None else [str(len(head_bytes))]
    headers = [("content-type", "application/octet-stream")]
    headers += [("inference-header-content-length", v) for v in values]
    return post(V2, head_bytes + data, headers)


def _bin_input(size: object, shape: object = None, datatype: str = "BYTES") -> dict[str, object]:
    return {
        "name": "text",
        "shape": [2] if shape is None else shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


TWO = _bytes_tensor(b"good", b"bad")
OK_HEAD = {"inputs": [_bin_input(len(TWO))]}


def _invalid_utf8_model_name() -> bytes:
    """A ModelInferRequest whose model_name (field 1, a proto3 string) is not UTF-8."""
    good = infer_request(b"hi").SerializeToString()
    name = b"sen\xfftiment"
    rest = good[2 + len(b"sentiment") :]
    return b"\x0a" + bytes([len(name)]) + name + rest


P = b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: t\r\n"
BODY = b'{"instances":["hi"]}'
CL = b"Content-Length: 20\r\n"


# --- the corpus --------------------------------------------------------------------------
def cases() -> list[Case]:
    j = [("content-type", "application/json")]
    out = [
        # v1 JSON
        Case("v1", "not json", post(V1, b"{oops"), 400, "Unrecognized request format"),
        Case("v1", "json array", post(V1, b"[1,2]"), 400, "JSON object"),
        Case("v1", "missing instances", post(V1, b"{}"), 400, 'missing field "instances"'),
        Case("v1", "instances null", post(V1, b'{"instances":null}'), 400, "must be a list"),
        Case("v1", "empty", post(V1, b'{"instances":[]}'), 400, "empty"),
        Case("v1", "number", post(V1, b'{"instances":[7]}'), 400, "instances[0] must be"),
        Case("v1", "blank", post(V1, b'{"instances":["  "]}'), 400, "empty string"),
        Case("v1", "escaped lone surrogate", post(V1, b'{"instances":["a\\ud800b"]}'), 400,
             "surrogate"),
        Case("v1", "raw ED A0 80", post(V1, b'{"instances":["a\xed\xa0\x80b"]}'), 400,
             "Unrecognized request format"),
        Case("v1", "invalid utf-8", post(V1, b'{"instances":["\xff\xfe"]}'), 400,
             "Unrecognized request format"),
        Case("v1", "deep nesting", post(V1, b'{"instances":' + b"[" * 5000 + b"]" * 5000 + b"}"),
             400, "Unrecognized request format"),
        Case("v1", "too many", post(V1, json.dumps({"instances": ["x"] * 300}).encode()), 400,
             "limit is"),
        Case("v1", "extra field", post(V1, b'{"instances":["x"],"x":1}'), 400, "unexpected"),
        Case("v1", "text and url", post(V1, b'{"instances":[{"text":"a","tweet_url":"b"}]}'),
             400, "exactly one of"),
        Case("v1", "unknown model", post("/v1/models/nope:predict", BODY), 404, "nope"),
        Case("v1", "wrong version", post(V1 + "?model_version=0", BODY), 404,
             "the loaded version is"),
        Case("v1", "over the body cap", post(V1, b'{"instances":["' + b"x" * (5 << 20) + b'"]}'),
             413, "exceeds the limit"),
        # v2 JSON
        Case("v2-json", "lone surrogate in data", post(V2, v2_body(["a\ud800b"])), 400,
             "input 'text'[0] is not valid Unicode"),
        Case("v2-json", "escaped low surrogate",
             post(V2, v2_body(["x"]).replace(b'"x"', b'"\\udfff"')), 400, "surrogate"),
        Case("v2-json", "raw ED A0 80 in data",
             post(V2, v2_body(["x"]).replace(b'"x"', b'"a\xed\xa0\x80b"')), 400, "surrogate"),
        Case("v2-json", "lone surrogate in id", post(V2, v2_body(["ok"], id="r\ud800")), 400,
             "request id is not valid Unicode"),
        Case("v2-json", "lone surrogate in output name",
             post(V2, v2_body(["ok"], outputs=[{"name": "label\ud800"}])), 400,
             "outputs[0].name is not valid Unicode"),
        Case("v2-json", "lone surrogate in datatype",
             post(V2, v2_body(["ok"], datatype="BY\ud800TES")), 400,
             "inputs[0].datatype is not valid Unicode"),
        Case("v2-json", "lone surrogate in input name", post(V2, v2_body(["ok"], name="t\udc00")),
             400, "inputs[0].name is not valid Unicode"),
        Case("v2-json", "missing inputs", post(V2, b"{}"), 400, "inputs"),
        Case("v2-json", "inputs null", post(V2, b'{"inputs":null}'), 400, "inputs"),
        Case("v2-json", "inputs object", post(V2, b'{"inputs":{}}'), 400, "inputs"),
        Case("v2-json", "shape mismatch", post(V2, v2_body(["a"], shape=[3])), 400,
             "has shape [3] but carries 1"),
        Case("v2-json", "negative shape", post(V2, v2_body(["a"], shape=[-1])), 400, "shape"),
        Case("v2-json", "huge shape", post(V2, v2_body(["a"], shape=[2**40])), 400, "shape"),
        Case("v2-json", "wrong datatype", post(V2, v2_body([1], datatype="INT32")), 400,
             "datatype BYTES"),
        Case("v2-json", "unknown output", post(V2, v2_body(["a"], outputs=[{"name": "x"}])), 400,
             "unknown output 'x'"),
        Case("v2-json", "unknown model", post("/v2/models/nope/infer", v2_body(["a"])), 404,
             "nope"),
        Case("v2-json", "unknown model, versioned",
             post("/v2/models/nope/versions/1/infer", v2_body(["a"])), 404, "nope"),
        Case("v2-json", "other version", post("/v2/models/sentiment/versions/0/infer",
             v2_body(["a"])), 404, "the loaded version is"),
        Case("v2-json", "other version, query", post(V2 + "?model_version=0", v2_body(["a"])),
             404, "the loaded version is"),
        Case("v2-json", "not json", post(V2, b"{oops", j), 400, "invalid"),
        # v2 binary-data extension (KServe's decoder, fenced by predictor/serving/binary_v2.py)
        Case("v2-binary", "header abc", binary(OK_HEAD, TWO, ["abc"]), 400,
             "inference-header-content-length must be a non-negative integer"),
        Case("v2-binary", "header 1e3", binary(OK_HEAD, TWO, ["1e3"]), 400,
             "must be a non-negative integer"),
        Case("v2-binary", "header empty", binary(OK_HEAD, TWO, [""]), 400,
             "must be a non-negative integer"),
        Case("v2-binary", "header repeated", binary(OK_HEAD, TWO, ["10", "10"]), 400,
             "must be sent once"),
        Case("v2-binary", "header past body", binary(OK_HEAD, TWO, ["99999"]), 400,
             "the body has only"),
        Case("v2-binary", "size negative", binary({"inputs": [_bin_input(-1)]}, TWO), 400,
             "binary_data_size must be a non-negative integer"),
        Case("v2-binary", "size string", binary({"inputs": [_bin_input("8")]}, TWO), 400,
             "binary_data_size must be a non-negative integer"),
        Case("v2-binary", "size float", binary({"inputs": [_bin_input(15.0)]}, TWO), 400,
             "binary_data_size must be a non-negative integer"),
        Case("v2-binary", "size past data", binary({"inputs": [_bin_input(1000)]}, TWO), 400,
             "byte(s) of binary data are left"),
        Case("v2-binary", "prefix lies 1000",
             binary({"inputs": [_bin_input(8)]}, struct.pack("<I", 1000) + b"abcd"), 400,
             "length prefix 1000 runs past"),
        Case("v2-binary", "prefix 0xFFFFFFFF",
             binary({"inputs": [_bin_input(8)]}, struct.pack("<I", 0xFFFFFFFF) + b"abcd"), 400,
             "length prefix 4294967295"),
        Case("v2-binary", "prefix truncated", binary({"inputs": [_bin_input(2)]}, b"\x01\x00"),
             400, "truncated 4-byte length prefix"),
        Case("v2-binary", "shape 3 for 2", binary({"inputs": [_bin_input(len(TWO), [3])]}, TWO),
             400, "3 element(s) but carries 2"),
        Case("v2-binary", "shape -1", binary({"inputs": [_bin_input(len(TWO), [-1])]}, TWO), 400,
             '"shape" must be a list of non-negative integers'),
        Case("v2-binary", "shape 2**40",
             binary({"inputs": [_bin_input(len(TWO), [2**40])]}, TWO), 400,
             "1099511627776 element(s) but carries 2"),
        Case("v2-binary", "element not utf-8",
             binary({"inputs": [_bin_input(6, [1])]}, _bytes_tensor(b"\xff\xfe")), 400,
             "element 0 is not valid UTF-8"),
        Case("v2-binary", "json part a list", binary([1, 2], TWO), 400,
             "the JSON part must be an object"),
        Case("v2-binary", "json part not json", binary(b"{nope", TWO), 400,
             "is not valid JSON"),
        Case("v2-binary", "no inputs", binary({"outputs": []}, b""), 400,
             '"inputs" must be a list, got null'),
        Case("v2-binary", "inputs null", binary({"inputs": None}, b""), 400,
             '"inputs" must be a list, got null'),
        Case("v2-binary", "inputs object", binary({"inputs": {"name": "text"}}, b""), 400,
             '"inputs" must be a list, got dict'),
        Case("v2-binary", "input without name",
             binary({"inputs": [{k: v for k, v in _bin_input(len(TWO)).items() if k != "name"}]},
                    TWO), 400, 'inputs[0]."name" must be a string'),
        Case("v2-binary", "input without datatype",
             binary({"inputs": [{k: v for k, v in _bin_input(len(TWO)).items()
                                 if k != "datatype"}]}, TWO), 400,
             'inputs[0]."datatype" must be a string'),
        Case("v2-binary", "fp32 with 5 bytes",
             binary({"inputs": [_bin_input(5, [1], "FP32")]}, b"\x00" * 5), 400,
             "which is 4 bytes, but binary_data_size is 5"),
        Case("v2-binary", "bytes left over", binary(OK_HEAD, TWO + b"junk"), 400,
             "byte(s) after the last binary input"),
        # raw HTTP: what reaches only the connection layer (predictor/serving/http_guard.py)
        Case("http", "64 MiB header",
             raw_http(P + b"X-Big: " + b"a" * (64 << 20) + b"\r\n" + CL + b"\r\n" + BODY), 431,
             "request headers exceed the limit"),
        Case("http", "1 MiB target", raw_http(b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n"),
             414, "request target is longer"),
        Case("http", "websocket upgrade with a body",
             raw_http(P + b"Connection: Upgrade\r\nUpgrade: websocket\r\n" + CL + b"\r\n" + BODY),
             400, "protocol upgrades"),
        Case("http", "bad content-length", raw_http(P + b"Content-Length: abc\r\n\r\n" + BODY),
             400, "malformed HTTP request"),
        Case("http", "duplicate content-length",
             raw_http(P + CL + b"Content-Length: 21\r\n\r\n" + BODY), 400,
             "malformed HTTP request"),
        Case("http", "content-length with chunked",
             raw_http(P + CL + b"Transfer-Encoding: chunked\r\n\r\n" + BODY), 400,
             "malformed HTTP request"),
        Case("http", "bad chunk size",
             raw_http(P + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + BODY + b"\r\n0\r\n\r\n"),
             400, "chunk size"),
        Case("http", "NUL in a header", raw_http(P + b"X-A: a\x00b\r\n" + CL + b"\r\n" + BODY),
             400, "header value"),
        Case("http", "garbage request line", raw_http(b"\x16\x03\x01\x02garbage\r\n\r\n"), 400,
             "malformed HTTP request"),
        Case("http", "lowercase method",
             raw_http(b"post " + V1.encode() + b" HTTP/1.1\r\nHost: t\r\n" + CL + b"\r\n" + BODY),
             400, "malformed HTTP request"),
        Case("http", "GET on predict", raw_http(b"GET " + V1.encode() + b" HTTP/1.1\r\n\r\n"),
             405, "it takes POST"),  # not KServe's v1 metadata route, which would 404
        Case("http", "DELETE on infer", raw_http(b"DELETE " + V2.encode() + b" HTTP/1.1\r\n\r\n"),
             405, "it takes POST"),
        Case("http", "GET on explain",
             raw_http(b"GET /v1/models/sentiment:explain HTTP/1.1\r\n\r\n"), 405, "it takes POST"),
        Case("http", "unknown path", raw_http(b"GET /nope HTTP/1.1\r\n\r\n"), 404, "Not Found"),
        Case("http", "explain on an unknown model",
             post("/v1/models/nope:explain", BODY), 404, "nope"),
        # gRPC
        Case("grpc", "not a protobuf", grpc_raw(b"\xff\xff\xff\xff not protobuf"),
             "INVALID_ARGUMENT", "not a valid ModelInfer protobuf message"),
        Case("grpc", "truncated message",
             grpc_raw(infer_request(b"hello").SerializeToString()[:-3]),
             "INVALID_ARGUMENT", "not a valid ModelInfer protobuf message"),
        Case("grpc", "invalid utf-8 model_name", grpc_raw(_invalid_utf8_model_name()),
             "INVALID_ARGUMENT", "not a valid ModelInfer protobuf message"),
        Case("grpc", "text not utf-8",
             grpc_raw(infer_request(b"\xff\xfe").SerializeToString()),
             "INVALID_ARGUMENT", "not valid UTF-8"),
        Case("grpc", "no inputs",
             grpc_raw(pb.ModelInferRequest(model_name="sentiment").SerializeToString()),
             "INVALID_ARGUMENT", "missing input 'text'"),
        Case("grpc", "unknown model",
             grpc_raw(infer_request(b"hi", model_name="nope").SerializeToString()), "NOT_FOUND",
             "nope"),
        Case("grpc", "over the message cap",
             grpc_raw(infer_request(b"x" * (5 << 20)).SerializeToString()),
             "RESOURCE_EXHAUSTED", "larger than max"),
    ]  # fmt: skip
    return out


def check(case: Case, answer: Answer) -> list[str]:
    """What is wrong with an answer to a hostile case ([] when it is right)."""
    problems = []
    if answer.status != case.status:
        problems.append(f"status {answer.status!r}, expected {case.status!r}")
    if isinstance(answer.status, int) and "application/json" not in answer.content_type:
        problems.append(f"content type {answer.content_type!r}, expected JSON")
    message = answer.error()
    if case.says.lower() not in message.lower():
        problems.append(f"message {message!r} does not say {case.says!r}")
    return problems


def server_error(status: int | str) -> bool:
    """The server-fault class: 5xx other than the documented 503, and their gRPC twins."""
    if isinstance(status, int):
        return status >= 500 and status != 503
    return status in ("UNKNOWN", "INTERNAL", "DATA_LOSS", "UNIMPLEMENTED")
