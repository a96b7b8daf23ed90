"""The LRU/breaker comparison runs and measures every case (figures are not asserted)."""

from __future__ import annotations

from loadtest import featurestore_micro


def test_every_case_is_measured() -> None:
    figures = featurestore_micro.measure(n=200, repeat=1)
    assert len(figures) == 6 and all(ns > 0 for ns in figures.values())


def test_cli_prints_one_line_per_case(capsys: object) -> None:
    assert featurestore_micro.main(["-n", "100"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.count("ns per operation") == 6
