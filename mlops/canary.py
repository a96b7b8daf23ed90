"""The Helm values step a verdict leads to: 10 -> 50 -> 100 percent, or back to 0.

A canary is a second storageUri: the candidate's model (published by `mlops.publish`)
goes into `canary.storageUri`; at 100 % it becomes `model.storageUri`, the stable one.
Only `canary.*` and, at 100 %, `model.storageUri` (and `image.*` for a Standard-mode
canary that also changed the image) are written, so the file layers over the release's
values with `helm upgrade --reuse-values -f step.yaml` (or after the other `-f` files).
Rollback keeps the canary but gives it 0 %: KServe then sends everything to the stable
model (Knative: the previous revision), which is never touched, and the candidate stays
inspectable.
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
    stable_uri: str = ""  # model.storageUri
    canary_uri: str = ""  # canary.storageUri

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
            str((values.get("model") or {}).get("storageUri") or ""),
            str(canary.get("storageUri") or ""),
        )


def next_step(percent: int, steps: tuple[int, ...] = STEPS) -> int:
    """The first step above `percent` (100 when none is)."""
    return next((s for s in steps if s > percent), 100)


def next_values(
    v: Verdict, now: Rollout, steps: tuple[int, ...] = STEPS, candidate_uri: str = ""
) -> dict[str, Any]:
    """The values override for the next `helm upgrade`. `candidate_uri` is the candidate's
    storageUri; without it the canary's current one (if any) is kept."""
    uri = candidate_uri or now.canary_uri
    if v is Verdict.ROLLBACK:
        # Nothing of the stable side moves: model.storageUri (and the image) stay as they are.
        return {"canary": {"enabled": True, "trafficPercent": 0}}
    model = {"storageUri": uri} if uri else {}
    if v is Verdict.HOLD:
        return {"canary": {"enabled": True, "trafficPercent": now.percent, **model}}
    target = next_step(now.percent, steps)
    if target < 100:
        return {"canary": {"enabled": True, "trafficPercent": target, **model}}
    # 100%: the canary becomes the release. Its storageUri becomes the stable one (Knative:
    # the spec then equals the canary revision's, which takes all traffic; Standard: the main
    # predictor loads it). A Standard-mode canary image becomes the main image likewise.
    out: dict[str, Any] = {"canary": {"enabled": False}}
    if uri:
        out["canary"]["storageUri"] = ""
        out["model"] = {"storageUri": uri}
    if now.mode == "Standard" and (now.canary_tag or now.canary_digest):
        out["image"] = {"tag": now.canary_tag, "digest": now.canary_digest}
    return out
