"""`python -m mlops.retrain`: build a candidate model next to the serving one, never over it.

Runs `training.build` into a staging directory under `--candidates`, then moves
it to `<candidates>/<version>` (the version is content-derived, so a rebuild of
the same artefact is recognised, not duplicated). Writes a candidate report
into that directory. Any argument retrain does not know goes to
training.build (e.g. `--mode full --seed 3 --limit 20000`).

Next: `python -m mlops.promote --stable <serving> --candidate <candidates>/<version>`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops import cli_parser, configure_logging
from predictor.modelcard import ServingCard
from training import build, data
from training.export import ParityError

log = logging.getLogger("mlops.retrain")
REPORT = "candidate_report"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = cli_parser(
        "mlops.retrain",
        __doc__,
        ("--serving", "the model directory serving now (read, never written)"),
    )
    p.add_argument(
        "--candidates",
        type=Path,
        default=Path("models/candidates"),
        help="where versioned candidate directories go",
    )
    args, rest = p.parse_known_args(argv)
    if any(a in ("--out", "--force") or a.startswith("--out=") for a in rest):
        p.error("--out and --force are retrain's to choose: it never writes an existing directory")
    return args, rest  # fmt: skip


def _inside(path: Path, other: Path) -> bool:
    path, other = path.resolve(), other.resolve()
    return path == other or other in path.parents


def report(card: ServingCard, serving: ServingCard | None, seconds: float) -> dict[str, Any]:
    """The candidate at a glance, beside the serving model's card figures."""
    extra = card.model_extra or {}
    out: dict[str, Any] = {
        "version": card.version,
        "created_at": extra.get("created_at"),
        "build_seconds": round(seconds, 1),
        "mode": extra.get("mode"),
        "encoder": extra.get("encoder"),
        "training_data_sha256": extra.get("training_data_sha256"),
        "split": extra.get("split"),
        "metrics": extra.get("metrics"),
        "parity_max_abs_diff": extra.get("parity_max_abs_diff"),
        "reference": extra.get("reference"),
    }
    if serving is not None:
        theirs = (serving.model_extra or {}).get("metrics") or {}
        ours = extra.get("metrics") or {}
        out["serving"] = {
            "version": serving.version,
            "metrics": theirs,
            "delta": {
                k: ours[k] - theirs[k]
                for k in ("accuracy", "macro_f1")
                if k in ours and k in theirs
            },
            "note": "each card scores its own held-out split; mlops.promote compares "
            "both models on texts neither trained on",
        }
    return out


def markdown(r: dict[str, Any], path: Path, serving: Path) -> str:
    m = r.get("metrics") or {}
    lines = [
        f"# Candidate {r['version']}",
        "",
        f"- built {r['created_at']} in {r['build_seconds']} s, mode {r['mode']}, "
        f"encoder {r['encoder']}",
        f"- split {r['split']}",
        f"- held-out accuracy {m.get('accuracy', float('nan')):.4f}, "
        f"macro-F1 {m.get('macro_f1', float('nan')):.4f}",
        f"- TorchScript parity max |diff| {r['parity_max_abs_diff']}",
    ]
    if "serving" in r:
        s = r["serving"]
        deltas = ", ".join(f"{k} {v:+.4f}" for k, v in s["delta"].items())
        lines.append(f"- vs serving {s['version']} (card figures): {deltas} ({s['note']})")
    lines += ["", "Next:", "", f"    python -m mlops.promote --stable {serving} --candidate {path}"]
    return "\n".join(lines) + "\n"


def retrain(args: argparse.Namespace, build_argv: list[str]) -> Path:
    """Build, move into place under its version, write the report; the new directory."""
    if _inside(args.candidates, args.serving) or _inside(args.serving, args.candidates):
        raise ValueError(f"--candidates {args.candidates} overlaps --serving {args.serving}")
    args.candidates.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    staging = args.candidates / f".retrain-{stamp}"
    started = time.perf_counter()
    try:
        build.build(build.parse_args([*build_argv, "--out", str(staging)]))
        card = ServingCard.read(staging)
        final = args.candidates / card.version
        if final.exists():
            log.info("%s already exists: the same artefact was built before", final)
        else:
            staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    serving = (
        ServingCard.read(args.serving) if (args.serving / "model_card.json").is_file() else None
    )
    r = report(ServingCard.read(final), serving, time.perf_counter() - started)
    (final / f"{REPORT}.json").write_text(json.dumps(r, indent=2) + "\n")
    (final / f"{REPORT}.md").write_text(markdown(r, final, args.serving))
    return final


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args, build_argv = parse_args(argv)
    try:
        final = retrain(args, build_argv)
    except (ParityError, data.DataError, RuntimeError, ValueError, OSError) as exc:
        log.error("retrain failed: %s", exc)
        return 1
    print((final / f"{REPORT}.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
