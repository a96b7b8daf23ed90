"""One async client per wire protocol, each answering with a status string.

A status string rather than an exception keeps the runner protocol-blind:
"200" and "grpc:OK" are successes, anything else is an error bucket
("503", "grpc:UNAVAILABLE", "timeout", "connect", "bad-body"). A 200 whose
body lacks one prediction per text counts as "bad-body": a server that
answers fast with nothing must not look fast.
"""

from __future__ import annotations

import ipaddress
import socket
from abc import ABC, abstractmethod
from enum import StrEnum
from urllib.parse import urlsplit

import grpc
import httpx
import orjson
from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

OK_STATUSES = frozenset({"200", "grpc:OK"})


class Wire(StrEnum):
    V1 = "v1"
    V2 = "v2"
    GRPC = "grpc"


class RemoteTargetError(ValueError):
    """A non-loopback target without the caller saying it meant one."""


def check_target(host: str, allow_remote: bool) -> None:
    """Load goes to loopback unless the user explicitly allows another address."""
    if allow_remote:
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise RemoteTargetError(f"cannot resolve target host {host!r}: {exc}") from exc
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote:
        raise RemoteTargetError(
            f"target {host!r} resolves to non-loopback {', '.join(remote)}; "
            "pass --allow-remote if you mean to load that machine"
        )


class Client(ABC):
    """Sends one request carrying some texts; returns a status string, never raises."""

    @abstractmethod
    async def send(self, texts: list[str]) -> str: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class _HttpClient(Client):
    path: str

    def __init__(
        self, url: str, model: str, concurrency: int, timeout: float, allow_remote: bool
    ) -> None:
        check_target(urlsplit(url).hostname or "", allow_remote)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)
        self._route = self.path.format(model=model)

    async def send(self, texts: list[str]) -> str:
        try:
            resp = await self._http.post(
                self._route,
                content=orjson.dumps(self.body(texts)),
                headers={"content-type": "application/json"},
            )
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError:
            return "connect"
        if resp.status_code != 200:
            return str(resp.status_code)
        try:
            answered = self.count(orjson.loads(resp.content))
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
            return "bad-body"
        return "200" if answered == len(texts) else "bad-body"

    async def aclose(self) -> None:
        await self._http.aclose()

    @abstractmethod
    def body(self, texts: list[str]) -> object: ...

    @abstractmethod
    def count(self, answer: dict[str, object]) -> int: ...


class V1Client(_HttpClient):
    """KServe v1: POST /v1/models/NAME:predict {"instances": [...]}."""

    path = "/v1/models/{model}:predict"

    def body(self, texts: list[str]) -> object:
        return {"instances": texts}

    def count(self, answer: dict[str, object]) -> int:
        predictions = answer["predictions"]
        assert isinstance(predictions, list)
        return len(predictions)


class V2RestClient(_HttpClient):
    """Open Inference Protocol over JSON: input `text` BYTES [N], output `label` [N]."""

    path = "/v2/models/{model}/infer"

    def body(self, texts: list[str]) -> object:
        return {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]
        }

    def count(self, answer: dict[str, object]) -> int:
        outputs = answer["outputs"]
        assert isinstance(outputs, list)
        label = next(o for o in outputs if o["name"] == "label")
        return int(label["shape"][0])


class GrpcClient(Client):
    """Open Inference Protocol over gRPC (inference.GRPCInferenceService/ModelInfer)."""

    def __init__(self, target: str, model: str, timeout: float, allow_remote: bool) -> None:
        check_target(target.rsplit(":", 1)[0].strip("[]"), allow_remote)
        self._channel = aio.insecure_channel(target)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        self._model = model
        self._timeout = timeout

    async def send(self, texts: list[str]) -> str:
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="text",
            datatype="BYTES",
            shape=[len(texts)],
            contents=pb.InferTensorContents(bytes_contents=[t.encode() for t in texts]),
        )
        request = pb.ModelInferRequest(model_name=self._model, inputs=[tensor])
        try:
            resp = await self._stub.ModelInfer(request, timeout=self._timeout)
        except aio.AioRpcError as exc:
            code = exc.code()
            return "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else f"grpc:{code.name}"
        names = [o.name for o in resp.outputs]
        if "label" not in names:
            return "bad-body"
        label = resp.outputs[names.index("label")]
        return "grpc:OK" if list(label.shape) == [len(texts)] else "bad-body"

    async def aclose(self) -> None:
        await self._channel.close()


def make_client(
    wire: Wire,
    *,
    url: str = "http://127.0.0.1:8080",
    grpc_target: str = "127.0.0.1:8081",
    model: str = "sentiment",
    concurrency: int = 16,
    timeout: float = 30.0,
    allow_remote: bool = False,
) -> Client:
    """The client for a wire protocol, pointed at `url` (REST) or `grpc_target`."""
    if wire is Wire.GRPC:
        return GrpcClient(grpc_target, model, timeout, allow_remote)
    cls = V1Client if wire is Wire.V1 else V2RestClient
    return cls(url, model, concurrency, timeout, allow_remote)
