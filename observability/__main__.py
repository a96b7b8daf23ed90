"""`python -m observability [--check]`: write the dashboard JSON and the rule file, or check them.

`--check` exits 1 when a checked-in file differs from what the code generates.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from observability import alerts, dashboard

OUTPUTS: tuple[tuple[Path, Callable[[], str]], ...] = (
    (dashboard.DASHBOARD_PATH, dashboard.render),
    (alerts.RULES_PATH, alerts.render),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m observability", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, render in OUTPUTS:
        text = render()
        current = path.read_text() if path.exists() else None
        if current == text:
            if not args.check:  # silence would look like a run that did nothing at all
                print(f"{path} is up to date")
            continue
        if args.check:
            stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} is out of date: run python -m observability", file=sys.stderr)
    if args.check and not stale:
        print("dashboard and alert rules are up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
