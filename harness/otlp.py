"""An OTLP/HTTP trace receiver on loopback: what a collector's `otlp` receiver does with
POST /v1/traces, decoded (protobuf ExportTraceServiceRequest), for tests and benchmarks.

`python -m harness.otlp --port 4318` runs one as a sink that prints how many spans it got,
so a `make bench` with OTEL_TRACES_EXPORTER=otlp measures the export's real cost (a
refused connection would be cheaper than a collector that answers).
"""

from __future__ import annotations

import argparse
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from harness.process import free_port

_ANSWER = ExportTraceServiceResponse().SerializeToString()


class OtlpReceiver:
    """Received export requests by path, kept in order (`keep=False`: counted only)."""

    def __init__(self, port: int | None = None, keep: bool = True) -> None:
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []
        self.span_count = 0
        self.encodings: list[str] = []  # each request's content-encoding ("" for none)
        self.keep = keep
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.encodings.append(self.headers.get("content-encoding", ""))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver._received(self.path, ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(_ANSWER)))
                self.end_headers()
                self.wfile.write(_ANSWER)

            def log_message(self, *_: object) -> None:
                return None

        self.port = port or free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT is set to for this receiver."""
        return f"http://127.0.0.1:{self.port}"

    def _received(self, path: str, req: ExportTraceServiceRequest) -> None:
        self.span_count += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        if self.keep:
            self.requests.append((path, req))

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        """(resource attributes, span) of everything received so far."""
        out = []
        for _, req in list(self.requests):
            for rs in req.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                out += [(resource, s) for ss in rs.scope_spans for s in ss.spans]
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.otlp", description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    sink = OtlpReceiver(args.port, keep=False).start()
    print(f"OTLP/HTTP sink on {sink.endpoint}/v1/traces; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(10)
            print(f"{sink.span_count} spans received", flush=True)
    except KeyboardInterrupt:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
