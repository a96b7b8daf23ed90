"""MLOps around the served model: drift checks, retraining, gated canary promotion.

Offline tools run by an operator or a CI job; the predictor never imports this package.
"""

import argparse
import logging
from pathlib import Path

# The model directory `make model` writes and `make serve` serves.
SERVING_DIR = Path("models/sentiment")


def configure_logging() -> None:
    """Timestamped INFO logs for the CLIs; httpx's per-request lines would bury the decision."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def cli_parser(
    module: str, doc: str | None, model_dir: tuple[str, str] | None = None
) -> argparse.ArgumentParser:
    """An argument parser that prints the module docstring (exit codes included) as written;
    its usage line says `python -m <module>`, the command a user types (argparse would say
    `cycle.py`); `model_dir` = (flag, help) adds a model-directory option (SERVING_DIR)."""
    p = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if model_dir is not None:
        p.add_argument(model_dir[0], type=Path, default=SERVING_DIR, help=model_dir[1])
    return p
