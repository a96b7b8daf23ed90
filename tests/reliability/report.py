"""The table `make reliability` prints: one row per check and phase."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tests.reliability.load import Stats


@dataclass(frozen=True)
class Row:
    check: str
    phase: str
    requests: int
    server_errors: int
    crashes: int
    p99_ms: float = math.nan
    rss_growth_mb: float = math.nan
    note: str = ""


ROWS: list[Row] = []


def record(
    check: str,
    phase: str,
    *,
    requests: int,
    server_errors: int,
    crashes: int,
    p99_ms: float = math.nan,
    rss_growth_mb: float = math.nan,
    note: str = "",
) -> None:
    ROWS.append(Row(check, phase, requests, server_errors, crashes, p99_ms, rss_growth_mb, note))


def record_stats(check: str, phase: str, stats: Stats, crashes: int = 0, note: str = "") -> None:
    record(
        check,
        phase,
        requests=stats.sent,
        server_errors=stats.server_errors,
        crashes=crashes,
        p99_ms=stats.p99_ms(),
        note=note,
    )


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    """Markdown, so the closing note can carry it as it is."""
    lines = [
        "| check | phase | requests | 5xx | crashes | p99 ms | RSS growth MiB | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.check} | {r.phase} | {r.requests} | {r.server_errors} | {r.crashes} | "
            f"{_cell(r.p99_ms)} | {_cell(r.rss_growth_mb)} | {r.note} |"
        )
    return "\n".join(lines)
