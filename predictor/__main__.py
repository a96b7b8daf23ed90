"""`python -m predictor`: KServe's server flags plus ours; settings from PREDICTOR_* / .env."""

from __future__ import annotations

import argparse
import sys
import warnings

from predictor import DEFAULT_MODEL_NAME
from predictor.app import Listeners, Settings, build_server
from predictor.model import SentimentModel
from predictor.serving import kserve_compat, logs
from predictor.serving.server import run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve the tweet sentiment model over KServe v1, v2 REST and v2 gRPC.",
        parents=[kserve_compat.cli_parser()],
    )
    parser.add_argument("--log_level", default="INFO", help="Root log level.")
    parser.add_argument(
        "--bind_address",
        default="127.0.0.1",
        help="Address REST and gRPC listen on (default loopback; 0.0.0.0 for all interfaces, "
        "as the container image and the chart set it).",
    )
    parser.set_defaults(model_name=DEFAULT_MODEL_NAME)  # KServe's own default is "model"
    args = parser.parse_args(argv)
    if args.workers != 1:
        parser.error(
            "--workers must be 1: one process batches all requests dynamically, and a "
            "TorchScript module cannot be shared across worker processes"
        )
    return args


def main(argv: list[str] | None = None, model_cls: type[SentimentModel] = SentimentModel) -> int:
    """Serve `model_cls` (a stand-in for benchmarks, or the real model) until SIGTERM."""
    args = parse_args(argv)
    # KServe 0.21 answers with FastAPI's deprecated ORJSONResponse on every request.
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")
    logs.configure(args.log_level)
    server = build_server(
        Settings.load(),
        Listeners(
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            bind_address=args.bind_address,
            enable_grpc=args.enable_grpc,
            grpc_threads=args.max_threads,
            timeout_keep_alive=args.timeout_keep_alive,
        ),
        args.model_name,
        model_cls,
    )
    return run(server)


if __name__ == "__main__":
    sys.exit(main())
