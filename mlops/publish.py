"""`python -m mlops.publish MODEL_DIR --to s3://BUCKET/PREFIX | oci://REGISTRY/REPO | pvc://CLAIM/PATH`.

Delivers a model directory the KServe way, so a new version is a new storageUri and
never a new runtime image:
- s3:// uploads the files under PREFIX/<version>/ (boto3; any S3-compatible store,
  `--endpoint-url` or AWS_ENDPOINT_URL), which KServe's storage initializer downloads;
- oci:// builds a modelcar with buildah (the files under /models on a busybox base, the
  least KServe's modelcar sidecar needs: `sh`, `ln`, `sleep`) tagged <version>, and pushes it;
- pvc:// copies the files into the claim mounted at `--pvc-root` (the mlops.cycle CronJob
  mounts it), under PATH/<version>/, staged then renamed so a reader never sees half a model.

The version is the model card's. A version is immutable: publishing it again with the same
bytes is a no-op that prints the same URI; with different bytes it is refused. Before
anything is written the directory is loaded the way the predictor loads it (card, files,
TorchScript, labels against the model's output size), so what publishes also serves.

Prints the storageUri for `model.storageUri` / `canary.storageUri`.
Exit codes: 0 published (or already there), 1 refused or failed, 2 usage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops import cli_parser, configure_logging
from mlops.storageuri import PUBLISHABLE, StorageUri, StorageUriError
from predictor.engine import Engine, ModelLoadError
from predictor.modelcard import CARD_FILE, ServingCard
from predictor.settings import ServingSettings

log = logging.getLogger("mlops.publish")

DIGEST_LABEL = "io.tweet-sentiment.model.digest"
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: one static binary, about 2 MB
BUSYBOX_APPLETS = ("sh", "ln", "sleep", "ls", "cat", "echo", "test", "[")


class PublishError(RuntimeError):
    """The directory cannot be published to that URI; the message says why."""


@dataclass(frozen=True)
class Content:
    """What a model directory holds: (relative path, sha256) per file, and one digest of it."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, model_dir: Path) -> Content:
        files = []
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            files.append((path.relative_to(model_dir).as_posix(), digest.hexdigest()))
        return cls(tuple(files))

    @property
    def digest(self) -> str:
        listing = json.dumps(self.files, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(listing).hexdigest()


def validate(model_dir: Path) -> ServingCard:
    """Load the directory as the predictor would (CPU, no warm-up); refuse what would not serve."""
    engine = Engine(ServingSettings(model_dir=model_dir, device="cpu", cpu_threads=1))
    try:
        return engine.load()
    except ModelLoadError as exc:
        raise PublishError(f"not publishable: {exc}") from exc
    finally:
        engine.shutdown()


def publish(
    model_dir: Path,
    to: str,
    *,
    endpoint_url: str | None = None,
    push: bool = True,
    tls_verify: bool = True,
    pvc_root: Path | None = None,
) -> str:
    """Publish `model_dir` under `to` (an s3:// prefix, an oci:// repository, or a pvc:// path
    of the claim mounted at `pvc_root`) and return the storageUri of this version.
    Raises PublishError (bad directory, bad URI, version conflict)."""
    try:
        target = StorageUri.parse(to)
    except StorageUriError as exc:
        raise PublishError(str(exc)) from exc
    if target.scheme == "pvc" and pvc_root is None:
        raise PublishError(f"{to!r}: a pvc:// target needs --pvc-root (where the claim is mounted)")
    if target.scheme not in PUBLISHABLE and target.scheme != "pvc":
        raise PublishError(
            f"{to!r}: publish writes s3://, oci:// and pvc://; {target.scheme}:// is read by "
            "KServe but filled by other tools (copy into the bucket, then use its URI)"
        )
    if target.tag or target.digest:
        raise PublishError(f"{to!r}: give the repository only; the tag is the card's version")
    card = validate(model_dir)
    try:
        uri = target.with_version(card.version)
    except StorageUriError as exc:
        raise PublishError(str(exc)) from exc
    content = Content.of(model_dir)
    if target.scheme == "s3":
        _S3(target, endpoint_url).publish(model_dir, content, StorageUri.parse(uri))
    elif target.scheme == "pvc":
        assert pvc_root is not None
        _claim_publish(model_dir, content, claim_dir(uri, pvc_root))
    else:
        _Modelcar(uri.removeprefix("oci://"), tls_verify).publish(model_dir, card, content, push)
    log.info("published %s version %s (%s) as %s", card.name, card.version, content.digest, uri)
    return uri


# --- s3:// ---------------------------------------------------------------------------------------


class _S3:
    """Objects under PREFIX/<version>/, each carrying its sha256, the card written last."""

    def __init__(self, target: StorageUri, endpoint_url: str | None) -> None:
        import boto3  # operator-side only: the predictor never needs it

        self.bucket = target.location
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _existing(self, prefix: str) -> dict[str, str]:
        """key (relative to prefix) -> recorded sha256 ('' when the object has none)."""
        found: dict[str, str] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                head = self.client.head_object(Bucket=self.bucket, Key=obj["Key"])
                found[obj["Key"].removeprefix(prefix)] = head.get("Metadata", {}).get("sha256", "")
        return found

    def publish(self, model_dir: Path, content: Content, uri: StorageUri) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = uri.path + "/"
        ours = dict(content.files)
        try:
            existing = self._existing(prefix)
            differ = sorted(k for k, sha in existing.items() if ours.get(k) != sha)
            if differ:
                raise PublishError(
                    f"s3://{self.bucket}/{prefix} already holds version {uri.version} with other "
                    f"bytes ({', '.join(differ[:5])} differ): a version is immutable; rebuild the "
                    "model (a new card version) instead of overwriting it"
                )
            if existing.keys() == ours.keys():
                log.info("s3://%s/%s already holds these bytes: nothing to do", self.bucket, prefix)
                return
            # The card last: a reader that sees the card sees every file it names.
            order = sorted(ours, key=lambda rel: (rel == CARD_FILE, rel))
            for rel in order:
                if rel in existing:
                    continue  # an interrupted earlier publish of the same bytes
                self.client.upload_file(
                    str(model_dir / rel), self.bucket, prefix + rel,
                    ExtraArgs={"Metadata": {"sha256": ours[rel]}},
                )  # fmt: skip
                log.info("uploaded s3://%s/%s%s", self.bucket, prefix, rel)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"S3 at s3://{self.bucket}/{prefix}: {exc}") from exc


# --- pvc:// --------------------------------------------------------------------------------------


def claim_dir(uri: str, pvc_root: Path) -> Path:
    """Where the pvc:// `uri` lies in the claim mounted at `pvc_root`."""
    return pvc_root.joinpath(*filter(None, StorageUri.parse(uri).path.split("/")))


def _claim_publish(model_dir: Path, content: Content, final: Path) -> None:
    """Copy into the claim: staged beside `final`, then renamed (one atomic step)."""
    if final.exists():
        if Content.of(final) != content:
            raise PublishError(
                f"{final} already holds version {final.name} with other bytes: a version is "
                "immutable; rebuild the model (a new card version) instead of overwriting it"
            )
        log.info("%s already holds these bytes: nothing to do", final)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.{os.getpid()}.partial"
    try:
        shutil.copytree(model_dir, staging)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- oci:// (modelcar) ---------------------------------------------------------------------------


class _Modelcar:
    """A modelcar built with buildah (chroot isolation, vfs storage: no daemon, no userns)."""

    def __init__(self, ref: str, tls_verify: bool) -> None:
        self.ref = ref
        self.tls = f"--tls-verify={str(tls_verify).lower()}"

    @staticmethod
    def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
        cmd = ["buildah", "--storage-driver", "vfs", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if check and result.returncode != 0:
            raise PublishError(f"{' '.join(cmd[:4])} failed: {result.stderr.strip()[-800:]}")
        return result

    def _local_digest(self) -> str | None:
        """The model digest label of the image in local storage; None when there is none."""
        result = self.buildah("inspect", "--type", "image", self.ref, check=False)
        if result.returncode != 0:
            return None
        labels = json.loads(result.stdout).get("OCIv1", {}).get("config", {}).get("Labels")
        return str((labels or {}).get(DIGEST_LABEL, "<no model digest label>"))

    def _remote_digest(self) -> str | None:
        """The same for the registry (skopeo reads its labels without pulling the layers)."""
        result = subprocess.run(
            ["skopeo", "inspect", self.tls, f"docker://{self.ref}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            if "manifest unknown" in result.stderr or "not found" in result.stderr.lower():
                return None
            raise PublishError(f"cannot read {self.ref}: {result.stderr.strip()[-400:]}")
        labels = json.loads(result.stdout).get("Labels")
        return str((labels or {}).get(DIGEST_LABEL, "<no model digest label>"))

    def _refuse_other_bytes(self, found: str | None, where: str, content: Content) -> bool:
        """True when `where` already has this version with these bytes; raise on other bytes."""
        if found is None:
            return False
        if found != content.digest:
            raise PublishError(
                f"{self.ref} already exists in {where} with other bytes (model digest {found}, "
                f"this directory {content.digest}): a version is immutable; rebuild the model "
                "(a new card version) instead of overwriting it"
            )
        return True

    def publish(self, model_dir: Path, card: ServingCard, content: Content, push: bool) -> None:
        for tool in ("buildah", "skopeo") if push else ("buildah",):
            if shutil.which(tool) is None:
                raise PublishError(f"oci:// needs {tool} (apt-get install {tool})")
        remote_has = push and self._refuse_other_bytes(
            self._remote_digest(), "the registry", content
        )
        local_has = self._refuse_other_bytes(self._local_digest(), "local storage", content)
        if not local_has and not remote_has:
            self._build(model_dir, card, content)
        if push and not remote_has:
            self.buildah("push", self.tls, self.ref, f"docker://{self.ref}")
            log.info("pushed %s", self.ref)

    def _build(self, model_dir: Path, card: ServingCard, content: Content) -> None:
        if not BUSYBOX.is_file():
            raise PublishError(
                f"the modelcar base needs {BUSYBOX} (apt-get install busybox-static)"
            )
        with tempfile.TemporaryDirectory(prefix="modelcar-") as tmp:
            root = Path(tmp)
            (root / "bin").mkdir()
            shutil.copy2(BUSYBOX, root / "bin" / "busybox")
            for applet in BUSYBOX_APPLETS:
                (root / "bin" / applet).symlink_to("busybox")
            # Readable by any uid: the predictor (10001) reads them through /proc/<pid>/root.
            shutil.copytree(model_dir, root / "models")
            for path in (root / "models").rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            (root / "models").chmod(0o755)
            ctr = self.buildah("from", "scratch").stdout.strip()
            try:
                self.buildah("copy", ctr, f"{root}/", "/")
                self.buildah(
                    "config",
                    "--label", f"{DIGEST_LABEL}={content.digest}",
                    "--label", f"org.opencontainers.image.title={card.name}",
                    "--label", f"org.opencontainers.image.version={card.version}",
                    "--label", "org.opencontainers.image.description=KServe modelcar: model "
                    "files under /models",
                    "--env", "PATH=/bin",
                    "--user", "10001:10001",
                    "--cmd", "sh",
                    ctr,
                )  # fmt: skip
                self.buildah("commit", "--rm", ctr, self.ref)
            except PublishError:
                self.buildah("rm", ctr, check=False)
                raise
        log.info("built modelcar %s", self.ref)


# --- CLI -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    p = cli_parser("mlops.publish", __doc__)
    p.add_argument("model_dir", type=Path, help="model directory (model.pt, tokenizer.json, card)")
    p.add_argument(
        "--to", required=True, help="s3://BUCKET/PREFIX, oci://REGISTRY/REPO or pvc://CLAIM/PATH"
    )
    p.add_argument("--pvc-root", type=Path, help="pvc://: where the claim is mounted")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL/AWS)")
    p.add_argument("--no-push", action="store_true", help="oci://: build into local storage only")
    p.add_argument(
        "--insecure-registry", action="store_true", help="oci://: plain HTTP / unverified TLS"
    )
    args = p.parse_args(argv)
    try:
        uri = publish(
            args.model_dir, args.to, endpoint_url=args.endpoint_url,
            push=not args.no_push, tls_verify=not args.insecure_registry,
            pvc_root=args.pvc_root,
        )  # fmt: skip
    except PublishError as exc:
        log.error("%s", exc)
        return 1
    print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
