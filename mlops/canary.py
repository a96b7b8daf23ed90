"""The Helm values step a verdict leads to: 10 -> 50 -> 100 percent, or back to 0.

Only `canary.*` (and, when a Standard-mode canary is promoted to 100, `image.*`)
is written, so the file layers over the release's values with `helm upgrade
--reuse-values -f step.yaml` (or after the other `-f` files). Rollback keeps the
canary revision but gives it 0%: KServe then sends everything to the previous
one, and the candidate stays inspectable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops.gates import Verdict

STEPS = (10, 50, 100)
CHART_VALUES = Path(__file__).resolve().parents[1] / "charts" / "sentiment" / "values.yaml"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass(frozen=True)
class Rollout:
    """Where the canary stands now; percent 0 with enabled False means not started."""

    enabled: bool
    percent: int
    mode: str = "Knative"
    canary_tag: str = ""
    canary_digest: str = ""

    @classmethod
    def from_values(cls, files: list[Path], defaults: Path = CHART_VALUES) -> Rollout:
        """Read the values in effect: the chart's defaults, then each file in order."""
        values: dict[str, Any] = yaml.safe_load(defaults.read_text()) or {}
        for f in files:
            values = merge(values, yaml.safe_load(f.read_text()) or {})
        canary = values.get("canary") or {}
        image = canary.get("image") or {}
        enabled = bool(canary.get("enabled"))
        return cls(
            enabled,
            int(canary.get("trafficPercent", 0)) if enabled else 0,
            str((values.get("predictor") or {}).get("deploymentMode", "Knative")),
            str(image.get("tag") or ""),
            str(image.get("digest") or ""),
        )


def next_step(percent: int, steps: tuple[int, ...] = STEPS) -> int:
    """The first step above `percent` (100 when none is)."""
    return next((s for s in steps if s > percent), 100)


def next_values(v: Verdict, now: Rollout, steps: tuple[int, ...] = STEPS) -> dict[str, Any]:
    """The values override for the next `helm upgrade`."""
    if v is Verdict.ROLLBACK:
        return {"canary": {"enabled": True, "trafficPercent": 0}}
    if v is Verdict.HOLD:
        return {"canary": {"enabled": True, "trafficPercent": now.percent}}
    target = next_step(now.percent, steps)
    if target < 100:
        return {"canary": {"enabled": True, "trafficPercent": target}}
    # 100%: the canary becomes the release. Knative: with no canaryTrafficPercent the
    # newest revision takes all traffic. Standard: the main image becomes the canary's.
    out: dict[str, Any] = {"canary": {"enabled": False}}
    if now.mode == "Standard" and (now.canary_tag or now.canary_digest):
        out["image"] = {"tag": now.canary_tag, "digest": now.canary_digest}
    return out
