"""`python -m mlops.cycle`: one run of the continuous-training loop, safe to repeat.

Idle (no canary): reads the evidence for the stable version from Prometheus
(label and score drift, mlops.drift; live accuracy, i.e. how often production
feedback agreed with what the model served). If either says act (or --force), it
retrains on the base corpus plus the collected feedback (training rows only,
weighted by --feedback-weight; never in an evaluation set), runs the offline
gates of mlops.promote, publishes the candidate (mlops.publish: pvc://, s3://,
oci://) and writes the first canary step (mlops.canary's shape, the one
mlops.promote writes: `canary.storageUri`, then `model.storageUri` at 100 %).
Canary running: reads the live gates (5xx ratio, p99, feedback accuracy of canary
against stable) and steps up (10 -> 50 -> 100), holds, or rolls back; at 100 the
candidate is the stable model.

Every decision is printed with its reasons. The state (stable and candidate
version, storageUri, canary percent, rejected candidates, the evidence the last
retrain used) and the last values step are written to --state as a ConfigMap
(`kubectl apply -f` it, or read it from a volume), and the step alone to
--values-out for `helm upgrade --reuse-values -f`. Nothing is written unless the
decision changes something, so a second run without new evidence changes nothing;
a retrain on evidence already tried (same stable version, same feedback rows) is
skipped. A failed retrain, gate or delivery never changes the stable version.
--dry-run prints what would happen and writes nothing.

Exit codes: 0 a decision was made (including "nothing to do" and "hold"; see the
printed `decision:` line and the state), 1 the cycle could not run (a source
unreachable, retrain or delivery failed; the state is unchanged), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mlops import cli_parser, configure_logging, retrain
from mlops.canary import STEPS, Rollout, next_step, next_values
from mlops.drift import compare
from mlops.feedback_data import (
    Accuracy,
    FeedbackError,
    TrainingRows,
    live_accuracy,
    read_records,
    training_rows,
)
from mlops.gates import Check, LiveRules, OfflineRules, Verdict, live_checks, offline_checks
from mlops.gates import verdict as worst
from mlops.gitops import GitError, GitTarget, commit_step
from mlops.heldout import HeldOutError
from mlops.live import NoData, from_prometheus
from mlops.prom import PromError, Prometheus, duration, duration_seconds
from mlops.publish import PublishError, claim_dir, publish
from predictor.featurestore.feedback_log import FeedbackSettings
from predictor.modelcard import ServingCard
from training import data
from training.build import share
from training.export import ParityError

log = logging.getLogger("mlops.cycle")
DECIDED, FAILED, USAGE = 0, 1, 2
STATE_KEY, VALUES_KEY = "state.yaml", "values.yaml"
KEEP_REJECTED = 20
DEFAULT_TTL = int(FeedbackSettings.model_fields["feedback_ttl_seconds"].default)


class CycleError(RuntimeError):
    """The cycle could not run; nothing was changed."""


# --- state ---------------------------------------------------------------------------------------
@dataclass
class Candidate:
    version: str
    dir: str
    storage_uri: str
    percent: int
    since: float = 0.0  # Unix time this step was written: live evidence counts from then on


@dataclass
class State:
    """What the loop knows between runs."""

    stable_version: str
    stable_dir: str
    stable_uri: str = ""
    candidate: Candidate | None = None
    rejected: list[dict[str, str]] = field(default_factory=list)
    last_evidence: dict[str, str] = field(default_factory=dict)  # what the last retrain used
    last_decision: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, stable_dir: Path, stable_uri: str) -> State:
        if not path.is_file():
            card = ServingCard.read(stable_dir)
            return cls(card.version, str(stable_dir), stable_uri)
        doc = yaml.safe_load(path.read_text()) or {}
        raw = yaml.safe_load((doc.get("data") or {}).get(STATE_KEY) or "{}") or {}
        cand = raw.pop("candidate", None)
        return cls(**raw, candidate=Candidate(**cand) if cand else None)

    def dump(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)


def configmap(name: str, state: State, values: dict[str, Any] | None) -> dict[str, Any]:
    """The state as a ConfigMap, so the same file can live on a volume or in the cluster."""
    body: dict[str, str] = {STATE_KEY: state.dump()}
    if values is not None:
        body[VALUES_KEY] = yaml.safe_dump(values, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "mlops-cycle"}},
        "data": body,
    }


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- timing --------------------------------------------------------------------------------------
@dataclass
class Stages:
    """Seconds per stage, printed with the decision (the closing note's transcript)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start

    def line(self) -> str:
        return "stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())


# --- decisions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What this run decided, why, and what it writes (None: nothing changes)."""

    action: str  # nothing | hold | canary | step | promote | rollback | refused | would-*
    reasons: list[str]
    state: State | None = None
    values: dict[str, Any] | None = None


def _mark(c: Check) -> str:
    return f"[{'pass' if c.passed else 'FAIL -> ' + c.on_fail.value}] {c.name}: {c.detail}"


def feedback_check(
    prom: Prometheus, model: str, stable: str, canary: str, window: str, args: argparse.Namespace
) -> Check:
    """Live accuracy: the canary may agree with feedback at most --max-accuracy-drop less than
    stable. Both sides need their own labels in the window: the canary's count alone says
    nothing about whether it is better or worse, so without stable's the gate holds."""
    c = live_accuracy(prom, model, canary, window)
    s = live_accuracy(prom, model, stable, window)
    name = "feedback accuracy"
    if c.total < args.min_canary_feedback:
        need = f"(needs {args.min_canary_feedback})"
        return Check(name, False, f"{c.total:.0f} feedback labels on the canary in "
                     f"{window} {need}", Verdict.HOLD)  # fmt: skip
    assert c.ratio is not None
    if s.ratio is None or s.total < args.min_stable_feedback:
        need = f"(needs {args.min_stable_feedback})"
        return Check(name, False, f"canary {c.ratio:.1%} of {c.total:.0f}, but only "
                     f"{s.total:.0f} labels on stable in {window} {need}: nothing to "
                     "compare with", Verdict.HOLD)  # fmt: skip
    ok = c.ratio >= s.ratio - args.max_accuracy_drop
    return Check(name, ok, f"feedback agrees with canary {c.ratio:.1%} ({c.total:.0f}) vs "
                 f"stable {s.ratio:.1%} ({s.total:.0f}); may drop {args.max_accuracy_drop:.0%}",
                 Verdict.ROLLBACK)  # fmt: skip


def evidence_window(window: str, since: float, now: float) -> str:
    """The live window, cut to the time since the current step was written: a step is only
    judged on traffic it has seen, so a second run right after a step holds."""
    if since <= 0:
        return window
    try:
        limit = duration_seconds(window)
    except ValueError as exc:
        raise CycleError(f"--canary-window: {exc}") from None
    return f"{max(1, int(min(limit, now - since)))}s"


def decide_canary(
    state: State, cand: Candidate, args: argparse.Namespace, prom: Prometheus
) -> Decision:
    """Live gates of the running canary -> step up, hold, or roll back."""
    model = ServingCard.read(Path(state.stable_dir)).name
    window = evidence_window(args.canary_window, cand.since, time.time())
    rules = LiveRules(window, args.min_requests, args.max_error_increase,
                      args.p99_tolerance, args.p99_slack_ms / 1000)  # fmt: skip
    checks = live_checks(prom, model, state.stable_version, cand.version, rules)
    checks.append(feedback_check(prom, model, state.stable_version, cand.version, window, args))
    v = worst(checks)
    reasons = [_mark(c) for c in checks]
    now = Rollout(cand.percent > 0, cand.percent, args.deployment_mode)
    values = next_values(v, now, args.steps, cand.storage_uri)
    if v is Verdict.HOLD:
        reasons.append(f"canary {cand.version} stays at {cand.percent}%")
        return Decision("hold", reasons)
    new = replace(state, rejected=list(state.rejected))
    if v is Verdict.ROLLBACK:
        new.candidate = None
        new.rejected = [*state.rejected, {"version": cand.version, "why": "live gates"}][
            -KEEP_REJECTED:
        ]
        reasons.append(f"canary {cand.version} rolled back to 0%; stable {state.stable_version} "
                       "keeps all traffic")  # fmt: skip
        return Decision("rollback", reasons, new, values)
    target = next_step(cand.percent, args.steps)
    if target < 100:
        new.candidate = replace(cand, percent=target, since=time.time())
        reasons.append(f"canary {cand.version}: {cand.percent}% -> {target}%")
        return Decision("step", reasons, new, values)
    new.stable_version, new.stable_dir, new.stable_uri = cand.version, cand.dir, cand.storage_uri
    new.candidate = None
    reasons.append(f"canary {cand.version} promoted to 100%: it is the stable model now "
                   f"(was {state.stable_version})")  # fmt: skip
    return Decision("promote", reasons, new, values)


@dataclass(frozen=True)
class Evidence:
    reasons: list[str]
    act: bool
    rows: TrainingRows


def gather(state: State, args: argparse.Namespace, prom: Prometheus, stages: Stages) -> Evidence:
    """Drift and live accuracy of the stable version, and the feedback rows to train on."""
    card = ServingCard.read(Path(state.stable_dir))
    reasons: list[str] = []
    act = False
    with stages.time("drift check"):
        try:
            report = compare(card, from_prometheus(prom, card.name, card.version, args.window))
        except NoData as exc:
            reasons.append(f"drift: no verdict ({exc})")
        else:
            psi = f"label PSI {report.labels.psi:.3f}" + (
                f", score PSI {report.scores.psi:.3f}" if report.scores else ""
            )
            if report.n_live < args.min_count:
                reasons.append(f"drift: only {report.n_live:.0f} live predictions "
                               f"(< {args.min_count}), no verdict; {psi}")  # fmt: skip
            elif drifted := report.drifted(args.max_psi):
                act = True
                reasons.append(f"drift: ACT, PSI above {args.max_psi} for "
                               f"{', '.join(drifted)} ({psi}, n={report.n_live:.0f})")  # fmt: skip
            else:
                reasons.append(f"drift: none ({psi} <= {args.max_psi}, n={report.n_live:.0f})")
    with stages.time("feedback accuracy"):
        acc: Accuracy = live_accuracy(prom, card.name, card.version, args.window)
        if acc.ratio is None or acc.total < args.min_feedback:
            reasons.append(f"feedback accuracy: {acc.total:.0f} labels in {args.window} "
                           f"(< {args.min_feedback}), no verdict")  # fmt: skip
        elif acc.ratio < args.min_accuracy:
            act = True
            reasons.append(f"feedback accuracy: ACT, {acc.ratio:.1%} of {acc.total:.0f} "
                           f"labels agree (< {args.min_accuracy:.0%})")  # fmt: skip
        else:
            reasons.append(f"feedback accuracy: fine, {acc.ratio:.1%} of {acc.total:.0f} "
                           f"labels agree (>= {args.min_accuracy:.0%})")  # fmt: skip
    rows = TrainingRows([])
    if args.feedback:
        with stages.time("feedback read"):
            records = read_records(
                args.feedback,
                card.name,
                args.feedback_ttl_s,
                args.key_prefix,
                token_file=args.feedback_token_file,
            )
            rows = training_rows(records, card.labels)
        reasons.append(f"feedback: {len(records)} records from {rows.writers} writer(s), "
                       f"{rows.reposts} replaced by a re-post, {len(rows.rows)} distinct texts "
                       f"(sha256 {rows.sha256[:12]}); at most {args.max_feedback_share:.0%} of "
                       "the training split")  # fmt: skip
    if args.force:
        act = True
        reasons.append("--force: retrain whatever the evidence says")
    return Evidence(reasons, act, rows)


def build_candidate(
    state: State, rows: TrainingRows, args: argparse.Namespace, stages: Stages
) -> Path:
    """mlops.retrain with the feedback rows; the candidate directory (staged, then moved)."""
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    build_argv = list(args.build_args)
    if rows.rows:
        extra = rows.write(work / f"feedback-{rows.sha256[:12]}.jsonl")
        build_argv += ["--extra-rows", str(extra), "--extra-weight", str(args.feedback_weight),
                       "--max-extra-share", str(args.max_feedback_share)]  # fmt: skip
    ns = argparse.Namespace(serving=Path(state.stable_dir), candidates=work / "candidates")
    with stages.time("retrain"):
        try:
            return retrain.retrain(ns, build_argv)
        except (ParityError, data.DataError, RuntimeError, ValueError, OSError) as exc:
            raise CycleError(f"retrain failed: {exc}") from exc


def decide_idle(
    state: State, args: argparse.Namespace, prom: Prometheus, stages: Stages
) -> Decision:
    """No canary: act on evidence, or do nothing."""
    ev = gather(state, args, prom, stages)
    reasons = list(ev.reasons)
    if not ev.act:
        reasons.append("nothing to do: no signal says act")
        return Decision("nothing", reasons)
    evidence = {"stable_version": state.stable_version, "feedback_sha256": ev.rows.sha256}
    if evidence == state.last_evidence and not args.force:
        reasons.append(f"nothing to do: stable {state.stable_version} was already retrained on "
                       "this feedback (no new evidence since); --force to try again")  # fmt: skip
        return Decision("nothing", reasons)
    if args.dry_run:
        reasons.append(f"would retrain on the corpus plus {len(ev.rows.rows)} feedback rows "
                       f"(weight {args.feedback_weight}), gate, deliver to {args.publish_to}, "
                       "start a canary")  # fmt: skip
        return Decision("would-retrain", reasons)
    cand_dir = build_candidate(state, ev.rows, args, stages)
    cand = ServingCard.read(cand_dir)
    reasons.append(f"retrained: candidate {cand.version} in {cand_dir}")
    with stages.time("offline gates"):
        rules = OfflineRules(args.max_f1_drop, args.min_agreement, args.eval_size)
        try:
            checks = offline_checks(Path(state.stable_dir), cand_dir, rules)
        except HeldOutError as exc:
            raise CycleError(f"the offline gates could not run: {exc}") from exc
    reasons += [_mark(c) for c in checks]
    new = replace(state, last_evidence=evidence, rejected=list(state.rejected))
    v = worst(checks)
    if v is not Verdict.PROMOTE:
        new.rejected = [*state.rejected, {"version": cand.version, "why": f"offline {v.value}"}][
            -KEEP_REJECTED:
        ]
        reasons.append(f"candidate {cand.version} not published (offline {v.value}); "
                       f"stable {state.stable_version} unchanged")  # fmt: skip
        return Decision("refused", reasons, new)
    with stages.time("publish"):
        try:
            uri = publish(cand_dir, args.publish_to, pvc_root=args.pvc_root)
        except PublishError as exc:
            raise CycleError(f"publishing to {args.publish_to} failed: {exc}") from exc
    reasons.append(f"published {cand.version} as {uri}")
    first = next_step(0, args.steps)
    # On a claim the published copy is what later runs read (stable_dir after a promotion).
    local = (
        claim_dir(uri, args.pvc_root) if uri.startswith("pvc://") and args.pvc_root else cand_dir
    )
    new.candidate = Candidate(cand.version, str(local), uri, first, time.time())
    values = next_values(Verdict.PROMOTE, Rollout(False, 0, args.deployment_mode), args.steps, uri)
    reasons.append(f"canary {cand.version} starts at {first}%")
    return Decision("canary", reasons, new, values)


# --- CLI -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    o, lv = OfflineRules(), LiveRules()
    stable = ("--stable", "the stable model directory (until a promotion records another in "
              "the state)")  # fmt: skip
    p = cli_parser("mlops.cycle", __doc__, stable)
    p.add_argument("--stable-uri", default="", help="the stable model's storageUri, for the record")
    p.add_argument(
        "--state",
        type=Path,
        default=Path("mlops-cycle/state.yaml"),
        help="ConfigMap-shaped YAML holding the loop's state",
    )
    p.add_argument(
        "--state-name", default="", help="its metadata.name (default: <model>-mlops-cycle)"
    )
    p.add_argument(
        "--values-out",
        type=Path,
        default=Path("mlops-cycle/step.yaml"),
        help="where a new Helm values step is written",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("mlops-cycle/work"),
        help="candidates and feedback rows are built here",
    )
    p.add_argument("--prometheus", metavar="URL", required=True)
    p.add_argument(
        "--feedback",
        metavar="SOURCE",
        help="the feature store as the predictor names it (redis://, rediss://, "
        "redis+sentinel://, redis+cluster://; passwords from PREDICTOR_SECRETS_DIR), "
        "http(s)://PREDICTOR or a JSON-lines file",
    )
    p.add_argument(
        "--key-prefix",
        default=None,
        help="feature store key prefix (default: PREDICTOR_KEY_PREFIX, else the predictor's)",
    )
    p.add_argument(
        "--feedback-ttl-s",
        type=float,
        default=DEFAULT_TTL,
        help="feedback older than this is ignored",
    )
    p.add_argument(
        "--feedback-weight", type=int, default=3, help="times each feedback row counts in training"
    )
    p.add_argument(
        "--max-feedback-share",
        type=share,
        default=0.1,
        help="most of the training split (weighted) feedback rows may be in one retrain; beyond "
        "it a seeded sample is kept. The card records rows used and capped "
        "(extra_training_rows), so a writer token cannot outvote the corpus",
    )
    p.add_argument(
        "--feedback-token-file",
        type=Path,
        default=None,
        help="reader token for an http(s):// --feedback source (the route needs one)",
    )
    p.add_argument("--publish-to", default="", help="pvc://CLAIM/PATH, s3://... or oci://...")
    p.add_argument("--pvc-root", type=Path, help="where the pvc:// claim is mounted")
    p.add_argument("--deployment-mode", choices=("Knative", "Standard"), default="Knative")
    p.add_argument(
        "--window", type=duration, default="1h", help="evidence window (drift, accuracy)"
    )
    p.add_argument("--max-psi", type=float, default=0.2)
    p.add_argument("--min-count", type=int, default=100, help="predictions before drift counts")
    p.add_argument("--min-feedback", type=int, default=20, help="labels before accuracy counts")
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=0.7,
        help="retrain when feedback agrees less often than this",
    )
    p.add_argument("--steps", default=",".join(map(str, STEPS)))
    p.add_argument("--canary-window", type=duration, default=lv.window)
    p.add_argument("--min-requests", type=float, default=lv.min_requests)
    p.add_argument("--max-error-increase", type=float, default=lv.max_error_increase)
    p.add_argument("--p99-tolerance", type=float, default=lv.p99_tolerance)
    p.add_argument("--p99-slack-ms", type=float, default=lv.p99_slack_s * 1000)
    p.add_argument("--min-canary-feedback", type=int, default=10)
    p.add_argument(
        "--min-stable-feedback",
        type=int,
        default=10,
        help="labels on stable in the canary window; fewer: the feedback gate holds",
    )
    p.add_argument("--max-accuracy-drop", type=float, default=0.05)
    p.add_argument("--max-f1-drop", type=float, default=o.max_f1_drop)
    p.add_argument("--min-agreement", type=float, default=o.min_agreement)
    p.add_argument("--eval-size", type=int, default=o.eval_size)
    g = p.add_argument_group(
        "GitOps delivery",
        "commit each values step to the repository Argo CD / Flux syncs (besides --values-out)",
    )
    g.add_argument(
        "--git-repo", metavar="URL", help="clone URL (ssh://, git@host:, https://, a path)"
    )
    g.add_argument("--git-path", default="mlops/step.yaml", help="the values file in the repo")
    g.add_argument("--git-branch", default="main", help="the branch the controller syncs")
    g.add_argument(
        "--git-new-branch",
        action="store_true",
        help="push each step to a new branch (--git-branch-prefix + version-action) for review",
    )
    g.add_argument("--git-branch-prefix", default="mlops/")
    g.add_argument("--git-ssh-key-file", type=Path, help="SSH private key (a mounted Secret)")
    g.add_argument("--git-known-hosts-file", type=Path, help="known_hosts for the Git host")
    g.add_argument("--git-token-file", type=Path, help="HTTPS token (a mounted Secret)")
    g.add_argument("--git-username", default="x-access-token", help="HTTPS user for the token")
    g.add_argument("--git-author", default="mlops-cycle <mlops-cycle@users.noreply.local>")
    p.add_argument("--force", action="store_true", help="retrain without a signal")
    p.add_argument("--dry-run", action="store_true", help="print the decision, write nothing")
    args, rest = p.parse_known_args(argv)
    chosen = ("--out", "--force", "--extra-rows", "--extra-weight", "--max-extra-share")
    if any(a in chosen or a.startswith("--out=") for a in rest):
        p.error("--out and --extra-rows are the cycle's to choose")
    args.build_args = [a for a in rest if a != "--"]
    try:
        args.steps = tuple(sorted(int(s) for s in args.steps.split(",")))
    except ValueError:
        p.error(f"--steps {args.steps!r}: comma-separated percentages")
    try:
        args.git = git_target(args)
    except GitError as exc:
        p.error(str(exc))
    return args  # fmt: skip


def git_target(args: argparse.Namespace) -> GitTarget | None:
    """The GitOps target the flags name, or None (write the files only)."""
    if not args.git_repo:
        return None
    for flag in ("git_ssh_key_file", "git_known_hosts_file", "git_token_file"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            raise GitError(f"--{flag.replace('_', '-')} {path}: no such file")
    return GitTarget(
        args.git_repo, args.git_path, args.git_branch, args.git_new_branch,
        args.git_branch_prefix, args.git_ssh_key_file, args.git_known_hosts_file,
        args.git_token_file, args.git_username, args.git_author,
    )  # fmt: skip


def _figures(model_dir: str) -> str:
    """The held-out figures a card records (what the commit message carries)."""
    try:
        card = ServingCard.read(Path(model_dir))
    except (OSError, ValueError):
        return "card unreadable"
    m = (card.model_extra or {}).get("metrics") or {}
    acc, f1 = m.get("accuracy"), m.get("macro_f1")
    shown = ", ".join(f"{k} {v:.3f}" for k, v in (("accuracy", acc), ("macro-F1", f1))
                      if isinstance(v, int | float))  # fmt: skip
    return f"{card.version}: held-out {shown or 'figures not recorded'}"


def commit_message(d: Decision, before: State, stages: Stages) -> tuple[str, str]:
    """(message, branch topic) of the commit carrying a values step: a subject a reviewer can
    read in `git log --oneline`, the gates and figures in the body, trailers to grep."""
    assert d.state is not None
    cand = d.state.candidate or before.candidate
    model = ServingCard.read(Path(before.stable_dir)).name
    version = cand.version if cand else d.state.stable_version
    percent = d.state.candidate.percent if d.state.candidate else None
    subject = {
        "canary": f"{model}: canary {version} at {percent}%",
        "step": f"{model}: canary {version} to {percent}%",
        "promote": f"{model}: promote {version} to stable (was {before.stable_version})",
        "rollback": f"{model}: roll back canary {version}; {before.stable_version} keeps all",
    }.get(d.action, f"{model}: {d.action} {version}")
    figures = [f"stable {_figures(before.stable_dir)}"]
    if cand is not None:
        figures.append(f"candidate {_figures(cand.dir)}")
    body = [
        f"decision: {d.action}", *(f"  {r}" for r in d.reasons), "",
        "model cards:", *(f"  {f}" for f in figures), "", stages.line(), "",
        f"Mlops-Decision: {d.action}", f"Mlops-Model: {model}",
        f"Mlops-Stable-Version: {before.stable_version}",
    ]  # fmt: skip
    if cand is not None:
        body += [f"Mlops-Candidate-Version: {cand.version}",
                 f"Mlops-Candidate-Uri: {cand.storage_uri}"]  # fmt: skip
    topic = f"{version}-{d.action}" + (f"-{percent}" if percent is not None else "")
    return subject + "\n\n" + "\n".join(body) + "\n", topic


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> Decision:
    """One run: decide, print, and write what changed (unless --dry-run)."""
    state = State.load(args.state, args.stable, args.stable_uri)
    prom = Prometheus(args.prometheus)
    stages = Stages()
    cand = state.candidate
    if cand is not None:
        with stages.time("live gates"):
            d = decide_canary(state, cand, args, prom)
    else:
        if not args.publish_to and not args.dry_run:
            raise CycleError("--publish-to is needed to deliver a candidate")
        d = decide_idle(state, args, prom, stages)
    verb = "would " if args.dry_run and d.state is not None else ""
    out(f"decision: {verb}{d.action.upper()} (stable {state.stable_version}"
        + (f", canary {cand.version} at {cand.percent}%" if cand else "") + ")")  # fmt: skip
    for r in d.reasons:
        out(f"  {r}")
    if d.values is not None:
        out("next values: " + yaml.safe_dump(d.values, default_flow_style=True).strip())
    out(stages.line())
    if d.state is None or args.dry_run:
        return d
    d.state.last_decision = {"action": d.action, "reasons": d.reasons}
    if d.values is not None and args.git is not None:
        # first: when the push fails, nothing is recorded and the next run tries again
        message, topic = commit_message(d, state, stages)
        try:
            pushed = commit_step(args.git, d.values, message, topic,
                                 [f"decision: {d.action}", *d.reasons])  # fmt: skip
        except GitError as exc:
            raise CycleError(f"committing the step to {args.git.repo} failed: {exc}") from exc
        if pushed.commit is None:
            out(f"{args.git.path} on {pushed.branch} already holds this step: nothing committed")
        else:
            out(f"committed {pushed.commit[:12]} to {pushed.branch} of {args.git.repo}")
            d.state.last_decision["commit"] = pushed.commit
            d.state.last_decision["branch"] = pushed.branch
    if d.values is not None:
        header = "".join(f"# {line}\n" for line in [f"decision: {d.action}", *d.reasons])
        _write_atomic(args.values_out, header + yaml.safe_dump(d.values, sort_keys=False))
        out(f"wrote {args.values_out}")
    name = args.state_name or f"{ServingCard.read(Path(state.stable_dir)).name}-mlops-cycle"
    _write_atomic(args.state, yaml.safe_dump(configmap(name, d.state, d.values),
                                             sort_keys=False))  # fmt: skip
    out(f"wrote {args.state}")
    return d


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    try:
        run(args)
    except (CycleError, FeedbackError, PromError, NoData, OSError, ValueError) as exc:
        log.error("the cycle could not run, nothing changed: %s", exc)
        return FAILED
    return DECIDED


if __name__ == "__main__":
    sys.exit(main())
