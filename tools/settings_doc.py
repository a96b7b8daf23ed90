"""`python -m tools.settings_doc`: the settings tables in the READMEs, from the classes.

Hand-written tables drift (one already missed a variable), so each table sits
between markers in its README and is rewritten from the fields' types,
defaults and descriptions; `--check` fails when a README is out of date.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
import typing
from enum import Enum
from pathlib import Path

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from predictor.app import Settings
from predictor.settings_base import ENV_PREFIX, PredictorSettings

REPO = Path(__file__).resolve().parent.parent
_MARKER = re.compile(
    r"(<!-- settings:(?P<cls>\w+) -->\n)(?P<body>.*?)(<!-- /settings -->)", re.DOTALL
)


def classes() -> dict[str, type[PredictorSettings]]:
    """Every settings class the composition root reads, by class name."""
    out: dict[str, type[PredictorSettings]] = {}
    hints = typing.get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        cls = hints[f.name]
        assert isinstance(cls, type) and issubclass(cls, PredictorSettings)
        out[cls.__name__] = cls
    return out


def _default(field: FieldInfo) -> str:
    value = None if field.is_required() else field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        with contextlib.suppress(ValueError):  # outside the repo: print it whole
            value = value.relative_to(REPO)
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def variable(cls: type[PredictorSettings], name: str, field: FieldInfo) -> str:
    """The environment variable a field reads: its alias, else the class's prefix + name
    (`PREDICTOR_` on the shared base; `OTEL_` for the OpenTelemetry SDK's own variables)."""
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    prefix = str(cls.model_config.get("env_prefix", ENV_PREFIX))
    return f"{prefix}{name}".upper()


def table(cls: type[PredictorSettings]) -> str:
    """A markdown table of one class: variable, default, description."""
    rows = ["| variable | default | what |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        desc = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{variable(cls, name, field)}` | {_default(field)} | {desc} |")
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    """`text` with every marked table regenerated."""
    known = classes()

    def sub(m: re.Match[str]) -> str:
        name = m.group("cls")
        if name not in known:
            raise SystemExit(f"unknown settings class {name!r} in a settings marker")
        return m.group(1) + table(known[name]) + m.group(4)

    return _MARKER.sub(sub, text)


def documents() -> list[Path]:
    """The Markdown files that carry settings markers."""
    files = [REPO / "README.md", *sorted((REPO / "predictor").rglob("README.md"))]
    return [f for f in files if _MARKER.search(f.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.settings_doc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a README is out of date")
    args = parser.parse_args(argv)
    stale = []
    for doc in documents():
        old = doc.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            stale.append(doc)
            if not args.check:
                doc.write_text(new, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(d.relative_to(REPO)) for d in stale)
        print(f"settings tables out of date in {names}: run python -m tools.settings_doc")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
