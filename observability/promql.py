"""PromQL builders shared by the dashboard and the alerts.

Both read the same series in the same shapes (rates, ratios, quantiles of
histograms), so the shapes are written once here and the two consumers only
choose labels, windows and thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence


def selector(metric: str, matchers: Sequence[str] = ()) -> str:
    """`metric{a="x", b=~"y"}` (bare `metric` without matchers)."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def rate(
    metric: str,
    matchers: Sequence[str],
    window: str,
    by: Sequence[str] = (),
    offset: str = "",
) -> str:
    """Per-second rate of a counter, summed by `by`."""
    shift = f" offset {offset}" if offset else ""
    return f"sum{_by(by)} (rate({selector(metric, matchers)}[{window}]{shift}))"


def ratio(numerator: str, denominator: str) -> str:
    """`(a) / (b)`: parenthesised, so a comparison can follow it safely."""
    return f"({numerator}) / ({denominator})"


def quantile(
    q: float, histogram: str, matchers: Sequence[str], window: str, by: Sequence[str] = ()
) -> str:
    """The q-quantile of a histogram (given without `_bucket`), per `by` group."""
    buckets = rate(f"{histogram}_bucket", matchers, window, by=("le", *by))
    return f"histogram_quantile({q}, {buckets})"


def mean(histogram: str, matchers: Sequence[str], window: str, by: Sequence[str] = ()) -> str:
    """Mean observation of a histogram over the window: rate of sum over rate of count."""
    return ratio(
        rate(f"{histogram}_sum", matchers, window, by),
        rate(f"{histogram}_count", matchers, window, by),
    )


def on_predictor_pods(expr: str, info_matchers: Sequence[str]) -> str:
    """Keep only series of pods that run the predictor (of the chosen model and version).

    Pod-level series (process, cAdvisor, DCGM, feature store) carry no model
    label; joining on `predictor_model_info` by (namespace, pod) selects them.
    """
    info = f"max by (namespace, pod) ({selector('predictor_model_info', info_matchers)})"
    return f"({expr}) * on (namespace, pod) group_left () {info}"
