"""`pip install .` gives the predictor, its console script and the dependencies it imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Import name -> distribution name, where they differ.
DIST_OF = {
    "grpc": "grpcio",
    "grpc_interceptor": "grpc-interceptor",
    "pydantic_settings": "pydantic-settings",
    "google": "protobuf",
    "opentelemetry": "opentelemetry-api",  # the sdk and the exporter share its namespace
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(REPO), "-w", str(out)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (whl,) = out.glob("*.whl")
    return whl


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found: set[str] = set()
    for path in (REPO / "predictor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in stdlib and n not in ("predictor", "__future__")}


def test_wheel_declares_every_directly_imported_distribution(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []
    declared = {r.split("==")[0].split(">")[0].split("[")[0].strip().lower() for r in requires}
    # Imported lazily by CLIs outside the serving path, never needed to serve.
    optional = {"matplotlib"}
    missing = {
        DIST_OF.get(name, name).lower().replace("_", "-")
        for name in _third_party_imports() - optional
    } - {d.replace("_", "-") for d in declared}
    assert not missing, f"imported by predictor/ but not declared: {sorted(missing)}"
    assert "torch==2.13.0" in requires  # any other torch downloads gigabytes


def test_wheel_has_the_package_and_the_console_script_but_no_tests(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "predictor/__main__.py" in names and "predictor/featurestore/redis.py" in names
    assert not [n for n in names if n.startswith(("tests/", "training/", "loadtest/"))]
    assert "sentiment-predictor = predictor.__main__:main" in eps


def test_console_script_answers_help(wheel: Path, tmp_path: Path) -> None:
    """Installed without deps beside the venv's own packages, the script runs."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    env = {"PYTHONPATH": str(target), "PATH": sysconfig.get_path("scripts")}
    out = subprocess.run(
        [sys.executable, str(target / "bin" / "sentiment-predictor"), "--help"],
        check=True, timeout=120, capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert "--model_name" in out.stdout and "--http_port" in out.stdout
