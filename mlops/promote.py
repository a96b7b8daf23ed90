"""`python -m mlops.promote`: should the candidate model get more traffic, keep its share, or none?

Runs the offline rules (mlops.gates: parity, labels, macro-F1 and agreement on
texts neither model trained on) and, with --prometheus, the live canary rules
(5xx ratio and p99 of the canary version against stable). Going past the first
canary step needs live evidence. Writes the next Helm values step (mlops.canary):
the candidate's storageUri (--candidate-uri, as `mlops.publish` printed it) goes into
canary.storageUri, and at 100 % into model.storageUri. Prints the decision with every
rule's reason.

Exit codes: 0 promote, 3 hold, 4 rollback; 1 the rules could not run, 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from mlops import cli_parser, configure_logging
from mlops.canary import STEPS, Rollout, next_step, next_values
from mlops.gates import (
    Check,
    LiveRules,
    OfflineRules,
    Verdict,
    live_checks,
    offline_checks,
    verdict,
)
from mlops.heldout import HeldOutError
from mlops.prom import PromError, Prometheus, duration
from mlops.storageuri import StorageUri
from predictor.modelcard import ServingCard

log = logging.getLogger("mlops.promote")

EXIT = {Verdict.PROMOTE: 0, Verdict.HOLD: 3, Verdict.ROLLBACK: 4}
FAILED = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    o, lv = OfflineRules(), LiveRules()
    p = cli_parser("mlops.promote", __doc__)
    p.add_argument("--stable", type=Path, required=True, help="model directory serving now")
    p.add_argument("--candidate", type=Path, required=True, help="model directory to promote")
    p.add_argument(
        "--candidate-uri",
        default="",
        help="the candidate's storageUri (what `mlops.publish` printed); it must name the "
        "candidate card's version. Default: the canary.storageUri of --current-values",
    )
    p.add_argument(
        "--current-values",
        type=Path,
        action="append",
        default=[],
        help="values file(s) of the release now, in -f order (default: chart defaults, "
        "i.e. no canary running)",
    )
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="canary percent steps")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("canary-values.yaml"),
        help="where to write the next values step",
    )
    p.add_argument("--max-f1-drop", type=float, default=o.max_f1_drop)
    p.add_argument("--min-agreement", type=float, default=o.min_agreement)
    p.add_argument("--eval-size", type=int, default=o.eval_size)
    p.add_argument("--prometheus", metavar="URL", help="Prometheus for the live canary rules")
    p.add_argument("--window", type=duration, default=lv.window, help="live window, e.g. 10m")
    p.add_argument("--min-requests", type=float, default=lv.min_requests)
    p.add_argument("--max-error-increase", type=float, default=lv.max_error_increase)
    p.add_argument("--p99-tolerance", type=float, default=lv.p99_tolerance)
    p.add_argument("--p99-slack-ms", type=float, default=lv.p99_slack_s * 1000)
    return p.parse_args(argv)  # fmt: skip


def decide(args: argparse.Namespace, now: Rollout) -> list[Check]:
    """Every rule's outcome for this candidate at this rollout step."""
    rules = OfflineRules(args.max_f1_drop, args.min_agreement, args.eval_size)
    checks = offline_checks(args.stable, args.candidate, rules)
    if now.percent == 0:
        return checks  # the first step needs no live evidence: nothing of it runs yet
    if not args.prometheus:
        checks.append(Check("live evidence", False,
                            f"the canary has {now.percent}%: going further needs --prometheus",
                            Verdict.HOLD))  # fmt: skip
        return checks
    live = LiveRules(args.window, args.min_requests, args.max_error_increase, args.p99_tolerance,
                     args.p99_slack_ms / 1000)  # fmt: skip
    stable, cand = ServingCard.read(args.stable), ServingCard.read(args.candidate)
    return checks + live_checks(
        Prometheus(args.prometheus), cand.name, stable.version, cand.version, live
    )


def candidate_uri(args: argparse.Namespace, now: Rollout) -> str:
    """The storageUri the step will deploy, checked against the candidate's card: a URI of
    another version would canary a model the rules never judged."""
    uri = args.candidate_uri or now.canary_uri
    if not uri:
        return ""
    parsed = StorageUri.parse(uri, versioned=True)
    version = ServingCard.read(args.candidate).version
    if not parsed.digest and parsed.version != version:
        raise ValueError(
            f"storageUri {uri} names version {parsed.version!r} but the candidate's card is "
            f"{version!r}: publish the candidate (python -m mlops.publish) and pass its URI"
        )
    return uri


def render(v: Verdict, checks: list[Check], now: Rollout, values: dict[str, object]) -> str:
    """The decision for a human: verdict, step, each rule with its reason."""
    lines = [f"decision: {v.value.upper()} (canary now {now.percent}%)"]
    for c in checks:
        mark = "pass" if c.passed else f"FAIL -> {c.on_fail.value}"
        lines.append(f"  [{mark}] {c.name}: {c.detail}")
    lines.append("next values: " + yaml.safe_dump(values, default_flow_style=True).strip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    try:
        steps = tuple(sorted(int(s) for s in args.steps.split(",")))
        now = Rollout.from_values(args.current_values)
        uri = candidate_uri(args, now)
        checks = decide(args, now)
    except (HeldOutError, PromError, OSError, ValueError, yaml.YAMLError) as exc:
        log.error("the rules could not run: %s", exc)
        return FAILED
    v = verdict(checks)
    values = next_values(v, now, steps, uri)
    text = render(v, checks, now, values)
    if v is Verdict.PROMOTE:
        text += f"\n(step {now.percent}% -> {next_step(now.percent, steps)}%)"
    header = "".join(f"# {line}\n" for line in text.splitlines())
    args.out.write_text(header + yaml.safe_dump(values, sort_keys=False))
    print(text)
    print(f"wrote {args.out}")
    return EXIT[v]


if __name__ == "__main__":
    sys.exit(main())
