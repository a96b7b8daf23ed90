"""One async client per wire protocol, each answering with a status string.

A status string rather than an exception keeps the runner protocol-blind:
"200" and "grpc:OK" are successes, anything else is an error bucket
("503", "grpc:UNAVAILABLE", "timeout", "connect", "client-error", "bad-body"). A 200 whose
body lacks one prediction per text counts as "bad-body": a server that
answers fast with nothing must not look fast.
"""

from __future__ import annotations

import ipaddress
import socket
from abc import ABC, abstractmethod
from enum import StrEnum
from urllib.parse import urlsplit

import aiohttp
import grpc
import orjson
from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from predictor import DEFAULT_MODEL_NAME

OK_STATUSES = frozenset({"200", "grpc:OK"})
JSON = {"content-type": "application/json"}


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
    """aiohttp, not httpx: measured against the no-op server, httpx spent 2.0 ms of client
    CPU per request and aiohttp 0.18 ms; on 2 shared cores httpx made the load
    generator the bottleneck."""

    path: str

    def __init__(
        self, url: str, model: str, concurrency: int, timeout: float, allow_remote: bool
    ) -> None:
        check_target(urlsplit(url).hostname or "", allow_remote)
        self._url = url.rstrip("/") + self.path.format(model=model)
        self._limit = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        # created on first use, inside the running loop, as aiohttp requires
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit), timeout=self._timeout
            )
        return self._http

    async def send(self, texts: list[str]) -> str:
        try:
            async with self._session().post(
                self._url, data=orjson.dumps(self.body(texts)), headers=JSON
            ) as resp:
                if resp.status != 200:
                    await resp.read()
                    return str(resp.status)
                raw = await resp.read()
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectionError:
            return "connect"
        except aiohttp.ClientError:
            return "client-error"
        try:
            answered = self.count(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, IndexError, StopIteration):
            return "bad-body"
        return "200" if answered == len(texts) else "bad-body"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

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
    model: str = DEFAULT_MODEL_NAME,
    concurrency: int = 16,
    timeout: float = 30.0,
    allow_remote: bool = False,
) -> Client:
    """The client for a wire protocol, pointed at `url` (REST) or `grpc_target`."""
    if wire is Wire.GRPC:
        return GrpcClient(grpc_target, model, timeout, allow_remote)
    cls = V1Client if wire is Wire.V1 else V2RestClient
    return cls(url, model, concurrency, timeout, allow_remote)
