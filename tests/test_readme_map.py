"""The README's map of the house stays true: every folder its Layout names exists, every
folder of the repository (and every room of predictor/) is named, every package has its
tests folder, and every module path the README cites exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def _layout() -> str:
    block = README.split("## Layout\n\n```\n", 1)[1]
    return block.split("```", 1)[0]


def _tracked_dirs(under: Path) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", str(under.relative_to(REPO))],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    rel = under.relative_to(REPO)
    return {
        Path(f).relative_to(rel).parts[0] for f in out if len(Path(f).relative_to(rel).parts) > 1
    }


def test_every_top_level_folder_is_on_the_map_and_the_reverse() -> None:
    named = set(re.findall(r"^([a-z_]+)/", _layout(), re.M))
    folders = {d for d in _tracked_dirs(REPO) if not d.startswith(".")}
    assert named == folders, "README Layout and the repository disagree"


def test_every_room_of_predictor_is_on_the_map_and_the_reverse() -> None:
    named = set(re.findall(r"^  ([a-z_]+)/", _layout(), re.M))
    rooms = {d for d in _tracked_dirs(REPO / "predictor") if (REPO / "predictor" / d).is_dir()}
    assert named == rooms


def test_every_package_has_its_tests_folder() -> None:
    packages = ["training", "mlops", "loadtest", "observability", "tools"]
    packages += [f"predictor/{room}" for room in _tracked_dirs(REPO / "predictor")
                 if (REPO / "predictor" / room / "__init__.py").is_file()]  # fmt: skip
    for package in packages:
        tests = REPO / "tests" / package
        assert any(tests.glob("test_*.py")), f"{package}/ has no tests/{package}/test_*.py"


def test_every_module_path_the_readme_cites_exists() -> None:
    packages = "predictor|training|mlops|harness|loadtest|tools|observability"
    cited = set(re.findall(rf"(?<![\w/])((?:{packages})/[\w/]+\.py)\b", README))
    assert cited, "the README cites no module: the pattern is wrong"
    missing = sorted(p for p in cited if not (REPO / p).is_file())
    assert not missing, f"the README cites modules that do not exist: {missing}"
