"""Run KServe's REST and gRPC data planes around one SentimentModel, in one process.

We use KServe's data plane, endpoints and servicer as they are, but own the
life cycle: the listeners come up at once and `ready` turns true only after
the model has loaded and warmed in the background; SIGTERM drains (no new
work, everything queued answered) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from concurrent import futures
from typing import Any, cast

import orjson
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from grpc import aio

from predictor.errors import Forbidden
from predictor.model import SentimentModel
from predictor.serving import binary_v2, kserve_compat
from predictor.serving.edge import EdgeMiddleware, GrpcEdge, install_error_handlers
from predictor.serving.http_guard import HttpLimits, protocol_class
from predictor.serving.uvicorn_compat import ServerWithoutSignals
from predictor.settings import ServingSettings
from predictor.tracing import Tracing

log = logging.getLogger(__name__)


class _Servicer(kserve_compat.InferenceServicer):
    """KServe's servicer with readiness that reflects the model and a guarded repository."""

    def __init__(self, server: PredictorServer) -> None:
        super().__init__(server.kserve.dataplane, server.kserve.model_repository_extension)
        self._server = server

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return kserve_compat.pb.ServerReadyResponse(ready=self._server.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        meta = self._server.server_metadata()
        return kserve_compat.pb.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """KServe's answer plus `versions`; the parameters REST shows (version, device,
        precision), which the protobuf message has no field for, go in the initial
        metadata as `model-version`, `model-device`, `model-precision`."""
        response = await super().ModelMetadata(request, context)
        model = self._server.model
        if request.name == model.name:
            params = model.metadata_parameters()
            response.versions.append(params["version"])
            await context.send_initial_metadata(tuple((f"model-{k}", v) for k, v in params.items()))
        return response

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        self._server.check_repository_enabled()
        return await super().RepositoryModelLoad(request, context)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        self._server.check_repository_enabled()
        return await super().RepositoryModelUnload(request, context)


class PredictorServer:
    """REST (v1 + v2) and gRPC (v2) for one model, with background load and graceful drain."""

    def __init__(
        self,
        model: SentimentModel,
        settings: ServingSettings,
        *,
        http_port: int,
        grpc_port: int,
        bind_address: str = "127.0.0.1",
        enable_grpc: bool = True,
        grpc_threads: int = 4,
        timeout_keep_alive: int = 65,
        routers: Sequence[APIRouter] = (),
        tracing: Tracing | None = None,
    ) -> None:
        """`routers` are the predictor's own REST routes beside KServe's (e.g. per-user
        sentiment), built by the composition root; `tracing` is the one the model has."""
        self.model = model
        self.tracing = tracing or Tracing.off()
        self.routers = tuple(routers)
        self.settings = settings
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.bind_address = bind_address
        self.enable_grpc = enable_grpc
        self.grpc_threads = grpc_threads
        self.timeout_keep_alive = timeout_keep_alive
        # KServe's ModelServer is used for its registry and data plane only;
        # its start() would demand a loaded model and install its own signals.
        self.kserve = kserve_compat.ModelServer(
            http_port=http_port,
            grpc_port=grpc_port,
            enable_grpc=enable_grpc,
            grace_period=int(settings.drain_timeout_s),
        )
        self.kserve.register_model(model)
        self._stopping = asyncio.Event()
        self._draining = False
        self.exit_code = 0

    @property
    def ready(self) -> bool:
        return self.model.ready and not self._draining

    def check_repository_enabled(self) -> None:
        if not self.settings.enable_repository_api:
            raise Forbidden(
                "the model repository API (load/unload) is disabled; "
                "set PREDICTOR_ENABLE_REPOSITORY_API=true to enable it"
            )

    # --- assembly --------------------------------------------------------
    def rest_app(self) -> FastAPI:
        """The whole REST API as this server's own ASGI app (no module globals, so tests
        drive it in process): our routes, the edge, KServe's v1/v2 routes with readiness
        and metadata shadowed, one error handler, the guarded v2 binary decoder."""
        app = kserve_compat.new_rest_app()
        for router in self.routers:
            app.include_router(router)
        app.add_middleware(
            EdgeMiddleware, settings=self.settings, versions=self._versions, tracing=self.tracing
        )
        kserve_compat.register_routes(app, self.kserve)
        kserve_compat.shadow_route(app, "/v2/health/ready", self._ready_route, ["GET"])
        kserve_compat.shadow_route(app, "/v2/models/{model_name}", self._metadata_route, ["GET"])
        kserve_compat.shadow_route(app, "/v2", self._server_metadata_route, ["GET"])
        install_error_handlers(app)
        kserve_compat.guard_binary_decoder(self.kserve, binary_v2.check)
        return app

    def _rest(self) -> ServerWithoutSignals:
        s = self.settings
        keep_alive = s.http_keep_alive_s or self.timeout_keep_alive
        config = uvicorn.Config(
            self.rest_app(),
            host=self.bind_address,
            port=self.http_port,
            log_config=None,  # predictor.serving.logs configured logging already
            access_log=False,  # the edge writes one JSON access line instead
            # A backstop only: the drain answers what is left before it cancels (_drain).
            timeout_graceful_shutdown=cast(int, s.drain_budget()[0]),
            timeout_keep_alive=int(keep_alive),
            http=protocol_class(HttpLimits.from_settings(s, keep_alive)),
            ws="none",  # no WebSocket routes; Upgrade requests get a 400 (http_guard)
        )
        return ServerWithoutSignals(config)

    def _versions(self) -> dict[str, str | None]:
        """The served model and its loaded version (None while it loads), for the edge."""
        return {self.model.name: self.model.version if self.model.ready else None}

    async def _ready_route(self) -> Response:
        """Server readiness that follows the model (KServe's always says ready)."""
        return Response(
            orjson.dumps({"ready": self.ready}),
            status_code=200 if self.ready else 503,
            media_type="application/json",
        )

    def server_metadata(self) -> dict[str, Any]:
        """KServe's server metadata, advertising only the extensions served here: the
        repository extension only while its API is enabled."""
        meta = dict(self.kserve.dataplane.metadata())
        if not self.settings.enable_repository_api:
            meta["extensions"] = [
                e for e in meta["extensions"] if e != "model_repository_extension"
            ]
        return meta

    async def _server_metadata_route(self) -> Response:
        return Response(orjson.dumps(self.server_metadata()), media_type="application/json")

    async def _metadata_route(self, model_name: str) -> Response:
        """KServe's v2 model metadata plus `versions` and `parameters` (version, device,
        precision), which KServe's response model has no room for."""
        meta = dict(await self.kserve.dataplane.model_metadata(model_name))
        if model_name == self.model.name:
            params = self.model.metadata_parameters()
            meta.update(versions=[params["version"]], parameters=params)
        return Response(orjson.dumps(meta), media_type="application/json")

    def _grpc(self) -> aio.Server:
        limit = self.settings.max_body_bytes
        server = aio.server(
            futures.ThreadPoolExecutor(max_workers=self.grpc_threads),
            interceptors=(
                GrpcEdge(
                    self._versions,
                    access_log=self.settings.access_log,
                    request_timeout_s=self.settings.request_timeout_s,
                    message_timeout_s=self.settings.http_body_timeout_s,
                    tracing=self.tracing,
                ),
            ),
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", max(limit, 16 * 1024 * 1024)),
            ],
        )
        kserve_compat.add_servicer(_Servicer(self), server)
        server.add_insecure_port(f"{grpc_host(self.bind_address)}:{self.grpc_port}")
        return server

    # --- life cycle ------------------------------------------------------
    def request_stop(self) -> None:
        """Signal handler: begin the drain (idempotent)."""
        if not self._stopping.is_set():
            log.info("stop requested: draining")
            self._stopping.set()

    async def _load(self) -> None:
        try:
            await self.model.load_async()
        except Exception:
            log.exception("model failed to load; exiting")
            self.exit_code = 1
            self.request_stop()

    async def serve(self, handle_signals: bool = True) -> int:
        """Listen, load in the background, and drain on SIGTERM/SIGINT (or `request_stop`,
        the only way to stop a server run without signals, e.g. off the main thread)."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        rest = self._rest()
        rest_task = loop.create_task(rest.serve(), name="rest")
        grpc_server = self._grpc() if self.enable_grpc else None
        if grpc_server is not None:
            await grpc_server.start()
        log.info(
            "listening: REST %s:%d (v1, v2), gRPC %s",
            self.bind_address,
            self.http_port,
            f"{grpc_host(self.bind_address)}:{self.grpc_port} (v2)" if grpc_server else "disabled",
        )
        load_task = loop.create_task(self._load(), name="load")
        await self._stopping.wait()
        await self._drain(rest, rest_task, grpc_server, load_task)
        return self.exit_code

    async def _drain(
        self,
        rest: ServerWithoutSignals,
        rest_task: asyncio.Task[None],
        grpc_server: aio.Server | None,
        load_task: asyncio.Task[None],
    ) -> None:
        """One budget, `drain_timeout_s`: the listeners close at once (new connections are
        refused), in-flight and queued requests finish through the still-running batcher,
        what is left when the request part runs out is answered 503 'shutting down', and
        the write-behind flush gets the rest (`ServingSettings.drain_budget`)."""
        self._draining = True
        requests_s, flush_s = self.settings.drain_budget()
        answer_s = min(1.0, requests_s / 4)  # to write the 503s before uvicorn's backstop
        if not load_task.done():
            load_task.cancel()
        rest.should_exit = True  # uvicorn stops accepting and waits for in-flight requests
        waits: list[Any] = [rest_task]
        if grpc_server is not None:
            waits.append(grpc_server.stop(requests_s))
        listeners = asyncio.ensure_future(asyncio.gather(*waits, return_exceptions=True))
        done, _ = await asyncio.wait({listeners}, timeout=requests_s - answer_s)
        if not done:
            shed = self.model.shed(
                "the server is shutting down: not answered within the drain timeout "
                f"({self.settings.drain_timeout_s:g} s); retry, another replica will answer"
            )
            log.warning("drain: %d queued texts answered 503 (shutting down)", shed)
            await asyncio.wait({listeners}, timeout=answer_s + 1)
        flush_start = asyncio.get_running_loop().time()
        await self.model.drain(flush_s)
        # Spans of the last requests and flushes go out with what is left of the flush part.
        loop_time = asyncio.get_running_loop().time()
        await self.tracing.close(flush_s - (loop_time - flush_start))
        log.info("drained; exiting")


def grpc_host(bind_address: str) -> str:
    """gRPC's form of the REST bind address: all interfaces is `[::]` (dual stack), an IPv6
    address goes in brackets."""
    if bind_address in ("0.0.0.0", "::"):
        return "[::]"
    return f"[{bind_address}]" if ":" in bind_address else bind_address


def run(server: PredictorServer) -> int:
    """Run on uvloop when present (KServe's own start() uses the plain asyncio loop).

    Once the loop is gone its signal handlers are too; a second SIGTERM during
    interpreter teardown (Kubernetes or a test re-sending it) must not turn a
    clean drain into death by signal, so both signals are ignored from then on.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        code = asyncio.run(server.serve())
    else:
        code = uvloop.run(server.serve())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    return code
