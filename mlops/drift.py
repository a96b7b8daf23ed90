"""`python -m mlops.drift`: are live predictions still distributed like the held-out reference?

Compares the predicted-label shares and the top-class score histogram of a live
window with the reference `training.build` stored in the model card. PSI above
`--max-psi` on either is drift. Label shifts mean the traffic (or the world)
changed; score shifts with stable labels mean the model grew less (or more) sure.

Exit codes: 0 no drift, 1 drift, 2 usage or source error, 3 too few live predictions.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops import cli_parser, configure_logging
from mlops.live import (
    Distribution,
    NoData,
    align_scores,
    from_featurestore,
    from_prometheus,
    reference,
)
from mlops.prom import PromError, Prometheus, duration
from mlops.stats import ChiSquare, chi_square, psi_terms
from mlops.store import StoreError, store_settings
from predictor.modelcard import ServingCard

log = logging.getLogger("mlops.drift")

OK, DRIFT, ERROR, TOO_FEW = 0, 1, 2, 3


@dataclass(frozen=True)
class Comparison:
    """One distribution compared bin by bin."""

    name: str
    bins: list[str]
    reference: list[float]
    live: list[float]
    terms: list[float]

    @property
    def psi(self) -> float:
        return sum(self.terms)

    @classmethod
    def of(cls, name: str, bins: list[str], ref: list[float], live: list[float]) -> Comparison:
        return cls(name, bins, ref, live, psi_terms(ref, live))


@dataclass(frozen=True)
class DriftReport:
    version: str
    n_reference: float
    n_live: float
    labels: Comparison
    scores: Comparison | None  # None when the live source has no score histogram
    chi2: ChiSquare

    def drifted(self, max_psi: float) -> list[str]:
        """Names of the comparisons over the threshold."""
        return [c.name for c in (self.labels, self.scores) if c is not None and c.psi > max_psi]


def _edge_names(edges: tuple[float, ...]) -> list[str]:
    lows = (0.0, *edges[:-1])
    return [f"({lo:g}, {hi:g}]" for lo, hi in zip(lows, edges, strict=True)]


def compare(card: ServingCard, live: Distribution) -> DriftReport:
    """Label and score comparison of a live window against the card's reference."""
    ref = reference(card)
    names = list(ref.labels) + [k for k in live.labels if k not in ref.labels]
    r = [ref.labels.get(k, 0.0) for k in names]
    q = [live.labels.get(k, 0.0) for k in names]
    scores = None
    if live.score_counts and sum(live.score_counts) > 0:
        edges, rs, qs = align_scores(ref, live)
        scores = Comparison.of("top-class score", _edge_names(edges), rs, qs)
    return DriftReport(
        card.version, ref.n, live.n, Comparison.of("predicted label", names, r, q), scores,
        chi_square(r, q),
    )  # fmt: skip


def table(report: DriftReport) -> str:
    """Plain-text table: shares side by side and each bin's PSI term."""
    lines = [f"reference n={report.n_reference:.0f}   live n={report.n_live:.0f}"]
    for c in (report.labels, report.scores):
        if c is None:
            lines.append("\ntop-class score: the live source has no score histogram")
            continue
        rt, lt = sum(c.reference) or 1.0, sum(c.live) or 1.0
        lines.append(f"\n{c.name:<18} {'reference':>10} {'live':>10} {'PSI term':>10}")
        for b, r, q, t in zip(c.bins, c.reference, c.live, c.terms, strict=True):
            lines.append(f"{b:<18} {r / rt:>10.1%} {q / lt:>10.1%} {t:>10.4f}")
        lines.append(f"{'PSI':<18} {'':>10} {'':>10} {c.psi:>10.4f}")
    chi = report.chi2
    lines.append(f"\nchi-square (labels) {chi.statistic:.2f}, df {chi.df}, p {chi.p_value:.3g}")
    return "\n".join(lines)


def plot(report: DriftReport, path: Path) -> None:
    """Reference and live shares as paired bars, one panel per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [c for c in (report.labels, report.scores) if c is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, c in zip(axes[0], panels, strict=True):
        xs = range(len(c.bins))
        rt, lt = sum(c.reference) or 1.0, sum(c.live) or 1.0
        ax.bar([x - 0.2 for x in xs], [r / rt for r in c.reference], 0.4, label="reference")
        ax.bar([x + 0.2 for x in xs], [q / lt for q in c.live], 0.4, label="live")
        ax.set_xticks(list(xs), c.bins, rotation=30, ha="right")
        ax.set_ylabel("share")
        ax.set_title(f"{c.name}: PSI {c.psi:.3f}")
        ax.legend()
    fig.suptitle(f"version {report.version}: reference n={report.n_reference:.0f}, "
                 f"live n={report.n_live:.0f}")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli_parser(
        "mlops.drift", __doc__, ("--model-dir", "model directory whose card holds the reference")
    )
    p.add_argument("--version", default="", help="live version to read (default: the card's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL")
    src.add_argument(
        "--redis",
        metavar="URL",
        help="the feature store as the predictor names it (redis://, rediss://, "
        "redis+sentinel://, redis+cluster://); passwords, TLS CA and key prefix from the "
        "predictor's PREDICTOR_* settings and secret files",
    )
    p.add_argument(
        "--key-prefix",
        default=None,
        help="feature store key prefix (default: PREDICTOR_KEY_PREFIX, else the predictor's)",
    )
    p.add_argument(
        "--window", type=duration, default="1h", help="Prometheus range, e.g. 30m, 1h, 1d"
    )
    p.add_argument(
        "--max-psi",
        type=float,
        default=0.2,
        help="drift when either PSI exceeds this (0.1 watch, 0.25 act)",
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=100,
        help="fewer live predictions than this: exit 3, no verdict",
    )
    p.add_argument("--png", type=Path, default=None, help="write a bar chart here")
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    try:
        card = ServingCard.read(args.model_dir)
        version = args.version or card.version
        if args.prometheus:
            live = from_prometheus(Prometheus(args.prometheus), card.name, version, args.window)
        else:
            live = from_featurestore(store_settings(args.redis, args.key_prefix), card, version)
        report = compare(card, live)
    except (NoData, PromError, StoreError, OSError, ValueError) as exc:
        log.error("%s", exc)
        return ERROR
    print(table(report))
    if args.png:
        plot(report, args.png)
        print(f"\nwrote {args.png}")
    if report.n_live < args.min_count:
        print(f"\nonly {report.n_live:.0f} live predictions (< {args.min_count}): no verdict")
        return TOO_FEW
    drifted = report.drifted(args.max_psi)
    if drifted:
        print(f"\nDRIFT: PSI above {args.max_psi} for {', '.join(drifted)}")
        return DRIFT
    print(f"\nno drift: every PSI at or below {args.max_psi}")
    return OK


if __name__ == "__main__":
    sys.exit(main())
