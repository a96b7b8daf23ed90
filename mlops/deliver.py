"""Where the loop puts a candidate: a storageUri for `canary.storageUri`.

- `pvc://CLAIM/PATH`: the claim is mounted at `pvc_root` (the CronJob mounts it
  there); the model directory is copied to `pvc_root/PATH/<version>/` (staged,
  then renamed, so a reader never sees half a model) and the URI
  `pvc://CLAIM/PATH/<version>/` is returned. A version is immutable: the same
  bytes again is a no-op, other bytes are refused.
- `s3://` and `oci://`: `mlops.publish.publish(model_dir, to)` (the storageUri
  issue's command), imported only when such a target is used.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from predictor.modelcard import ServingCard

_PVC = re.compile(r"pvc://(?P<claim>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(?P<path>/\S*)?")


class DeliveryError(RuntimeError):
    """The candidate could not be delivered to that target."""


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files_a], shallow=False)
    return files_a == files_b and not mismatch and not errors


def to_pvc(model_dir: Path, to: str, pvc_root: Path) -> tuple[str, Path]:
    """Copy into the mounted claim; (storageUri, where it now lies locally)."""
    m = _PVC.fullmatch(to)
    if m is None:
        raise DeliveryError(f"{to!r} is not pvc://CLAIM[/PATH]")
    version = ServingCard.read(model_dir).version
    sub = (m.group("path") or "").strip("/")
    final = pvc_root.joinpath(*filter(None, sub.split("/")), version)
    uri = f"pvc://{m.group('claim')}/{sub + '/' if sub else ''}{version}/"
    if final.exists():
        if not _same_tree(model_dir, final):
            raise DeliveryError(f"{final} already holds version {version} with other bytes")
        return uri, final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{version}.{uuid.uuid4().hex[:8]}.partial"
    try:
        shutil.copytree(model_dir, staging)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return uri, final


Publish = Callable[[Path, str], str]


def deliver(model_dir: Path, to: str, pvc_root: Path | None) -> tuple[str, Path | None]:
    """(storageUri, local copy or None) of `model_dir` delivered to `to`."""
    if to.startswith("pvc://"):
        if pvc_root is None:
            raise DeliveryError("a pvc:// target needs --pvc-root (where the claim is mounted)")
        return to_pvc(model_dir, to, pvc_root)
    try:
        from mlops.publish import publish  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise DeliveryError(f"{to}: s3:// and oci:// need mlops.publish ({exc})") from exc
    try:
        return str(publish(model_dir, to)), None
    except Exception as exc:  # PublishError and the storage clients' own errors
        raise DeliveryError(f"publishing to {to} failed: {exc}") from exc
