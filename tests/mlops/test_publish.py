"""mlops.publish end to end, with real parts: a real S3-API server (moto's standalone server) and
a real OCI registry (Debian's docker-registry) on loopback; KServe's own download code
(`kserve-storage`, what the storage initializer runs) fetching into a /mnt/models-like
directory; a real predictor process serving what it fetched over v1 and v2.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import jsonschema
import pytest
from kserve_storage import Storage

from harness.inprocess import InProcessPredictor
from harness.servers import Predictor
from mlops import publish as pub
from mlops.storageuri import StorageUri, StorageUriError
from predictor.modelcard import ServingCard
from tests.charts.chart_tools import CHART
from tests.fixtures.object_store import Registry, S3Server, oci_registry, s3_server
from tests.mlops.conftest import with_card

__all__ = ["oci_registry", "s3_server"]

pytestmark = pytest.mark.timeout(900)
BUCKET = "models"


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """This process talks to the moto server, as the storage initializer would with its env."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return s3_server


def keys(prefix: str) -> list[str]:
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def kserve_download(uri: str, root: Path) -> tuple[Path, float]:
    """KServe's storage initializer step: the URI into an empty mnt/models; (dir, seconds)."""
    out = root / "mnt" / "models"
    started = time.monotonic()
    Storage.download(uri, str(out))
    return out, time.monotonic() - started


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start a predictor on a directory (as PREDICTOR_MODEL_DIR=/mnt/models); stopped after."""
    started: list[InProcessPredictor] = []

    def start(model_dir: Path, name: str = "sentiment") -> InProcessPredictor:
        log = tmp_path / f"predictor-{len(started)}.log"
        server = InProcessPredictor(model_dir, log, model_name=name).start()
        started.append(server)
        return server.wait_ready(120)

    yield start
    for server in started:
        server.stop()


def answers(server: Predictor, name: str, labels: list[str]) -> None:
    """v1 and v2 both answer with the card's labels and one probability per label."""
    texts = ["what a lovely day", "this is the worst service ever"]
    v1 = httpx.post(f"{server.url}/v1/models/{name}:predict", json={"instances": texts}, timeout=30)
    assert v1.status_code == 200, v1.text
    for p in v1.json()["predictions"]:
        assert p["label"] in labels and sorted(p["probabilities"]) == sorted(labels)
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    v2 = httpx.post(f"{server.url}/v2/models/{name}/infer", json=body, timeout=30)
    assert v2.status_code == 200, v2.text
    out = {o["name"]: o for o in v2.json()["outputs"]}
    assert set(out["label"]["data"]) <= set(labels)
    assert out["probabilities"]["shape"] == [2, len(labels)]


# --- the storageUri grammar -----------------------------------------------------------------------

URIS = {
    "pvc://sentiment-models/sentiment": True,
    "pvc://claim": True,
    "s3://tweet-models/sentiment/20260901-3f2a9c1d/": True,
    "gs://tweet-models/sentiment/v1": True,
    "oci://ghcr.io/tweet-sentiment/models/sentiment:20260901-3f2a9c1d": True,
    "oci://127.0.0.1:5000/models/tiny@sha256:" + "a" * 64: True,
    "oci://ghcr.io/tweet-sentiment/models/sentiment": False,  # a modelcar needs a version
    "hf://org/model": False,
    "https://example.com/model.tgz": False,
    "file:///models/sentiment": False,
    "s3://": False,
    "pvc://Bad_Claim/x": False,
    "/mnt/models": False,
}


@pytest.mark.parametrize(("uri", "ok"), URIS.items(), ids=list(URIS))
def test_the_chart_schema_and_mlops_agree_on_storage_uris(uri: str, ok: bool) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["definitions"]["storageUri"]
    chart_ok = jsonschema.Draft7Validator(schema).is_valid(uri)
    try:
        StorageUri.parse(uri, versioned=True)
        python_ok = True
    except StorageUriError:
        python_ok = False
    assert (chart_ok, python_ok) == (ok, ok)


def test_versions_narrow_prefixes_and_repositories() -> None:
    assert StorageUri.parse("s3://bkt/p").with_version("v1") == "s3://bkt/p/v1/"
    assert StorageUri.parse("s3://bkt").with_version("v1") == "s3://bkt/v1/"
    assert StorageUri.parse("oci://r.io/m/x").with_version("v1") == "oci://r.io/m/x:v1"
    assert StorageUri.parse("s3://bkt/p/v1/").version == "v1"
    assert StorageUri.parse("oci://r.io/m/x:v1").version == "v1"
    with pytest.raises(StorageUriError, match="cannot name"):
        StorageUri.parse("s3://bkt/p").with_version("no/slashes")


# --- s3:// ----------------------------------------------------------------------------------------


def test_s3_publish_kserve_download_then_serve(
    s3_env: S3Server, tiny_model_dir: Path, tmp_path: Path, serve: Any
) -> None:
    card = ServingCard.read(tiny_model_dir)
    started = time.monotonic()
    uri = pub.publish(tiny_model_dir, f"s3://{BUCKET}/sentiment")
    published = time.monotonic() - started
    assert uri == f"s3://{BUCKET}/sentiment/{card.version}/"
    assert keys(f"sentiment/{card.version}/") == sorted(
        f"sentiment/{card.version}/{p.name}" for p in tiny_model_dir.iterdir() if p.is_file()
    )
    mounted, seconds = kserve_download(uri, tmp_path)
    assert pub.Content.of(mounted) == pub.Content.of(tiny_model_dir)
    ready_started = time.monotonic()
    server = serve(mounted)
    ready = time.monotonic() - ready_started
    print(f"\ns3: publish {published:.1f} s, kserve download {seconds:.1f} s, "
          f"predictor ready {ready:.1f} s (contended 2-core host)")  # fmt: skip
    answers(server, "sentiment", card.labels)
    meta = httpx.get(f"{server.url}/v2/models/sentiment", timeout=10).json()
    assert meta["versions"] == [card.version]  # this server loaded the downloaded files


def test_same_version_same_bytes_is_a_no_op_other_bytes_are_refused(
    s3_env: S3Server, tiny_model_dir: Path, tmp_path: Path
) -> None:
    first = pub.publish(tiny_model_dir, f"s3://{BUCKET}/again")
    stamps = {
        o["Key"]: o["LastModified"]
        for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="again/")["Contents"]
    }
    assert pub.publish(tiny_model_dir, f"s3://{BUCKET}/again") == first
    after = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="again/")["Contents"]
    assert {o["Key"]: o["LastModified"] for o in after} == stamps  # nothing rewritten
    changed = with_card(tiny_model_dir, tmp_path / "changed", notes="retrained, same version")
    with pytest.raises(pub.PublishError, match=r"immutable.*") as err:
        pub.publish(changed, f"s3://{BUCKET}/again")
    assert "model_card.json" in str(err.value)


def test_an_interrupted_upload_is_completed_not_refused(
    s3_env: S3Server, tiny_model_dir: Path
) -> None:
    version = ServingCard.read(tiny_model_dir).version
    pub.publish(tiny_model_dir, f"s3://{BUCKET}/partial")
    boto3.client("s3").delete_object(Bucket=BUCKET, Key=f"partial/{version}/model_card.json")
    assert pub.publish(tiny_model_dir, f"s3://{BUCKET}/partial").endswith(f"/{version}/")
    assert f"partial/{version}/model_card.json" in keys("partial/")


def test_cli_prints_the_storage_uri(
    s3_env: S3Server, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = pub.main([str(tiny_model_dir), "--to", f"s3://{BUCKET}/cli",
                     "--endpoint-url", s3_env.endpoint])  # fmt: skip
    assert code == 0
    version = ServingCard.read(tiny_model_dir).version
    assert capsys.readouterr().out.strip() == f"s3://{BUCKET}/cli/{version}/"


# --- pvc:// ---------------------------------------------------------------------------------------


def test_pvc_style_directory_is_linked_into_mnt_models_and_served(
    tiny_model_dir: Path, tmp_path: Path, serve: Any
) -> None:
    """pvc://CLAIM/PATH: KServe mounts the claim at /mnt/pvc and its storage initializer links
    /mnt/pvc/PATH into /mnt/models; the same code does it here on a local directory."""
    claim = tmp_path / "mnt" / "pvc"
    shutil.copytree(tiny_model_dir, claim / "sentiment")
    mounted, _ = kserve_download(str(claim / "sentiment"), tmp_path)
    assert all((mounted / f).is_symlink() for f in ("model.pt", "model_card.json"))
    answers(serve(mounted), "sentiment", ServingCard.read(tiny_model_dir).labels)


def test_pvc_publish_copies_a_version_once_under_its_name(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """pvc:// into the claim mounted at pvc_root (what the mlops.cycle CronJob does)."""
    version = ServingCard.read(tiny_model_dir).version
    uri = pub.publish(tiny_model_dir, "pvc://models/team/sentiment", pvc_root=tmp_path)
    assert uri == f"pvc://models/team/sentiment/{version}/"
    local = pub.claim_dir(uri, tmp_path)
    assert local == tmp_path / "team" / "sentiment" / version
    assert (local / "model.pt").read_bytes() == (tiny_model_dir / "model.pt").read_bytes()
    assert [p.name for p in local.parent.iterdir()] == [version]  # no staging left behind
    assert pub.publish(tiny_model_dir, "pvc://models/team/sentiment", pvc_root=tmp_path) == uri


def test_pvc_publish_refuses_other_bytes_under_the_same_version(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    changed = shutil.copytree(tiny_model_dir, tmp_path / "changed")
    card = json.loads((changed / "model_card.json").read_text())
    (changed / "model_card.json").write_text(json.dumps({**card, "notes": "other bytes"}))
    pub.publish(tiny_model_dir, "pvc://models", pvc_root=tmp_path / "claim")
    with pytest.raises(pub.PublishError, match="other bytes"):
        pub.publish(changed, "pvc://models", pvc_root=tmp_path / "claim")


# --- a second model, values only ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RoBERTa (byte-level BPE, pad id 1) as another product: its own name, version
    and label names, all in its card; nothing in code or chart knows them."""
    from training.tiny import build_tiny_model_dir

    root = tmp_path_factory.mktemp("tone")
    built = build_tiny_model_dir(root, "roberta", "--name", "tone")
    return with_card(
        built, root / "tone", version="tone-20261020", labels=["harsh", "flat", "warm"]
    )


def test_a_second_model_is_served_by_the_same_runtime_through_values_only(
    s3_env: S3Server, tone_dir: Path, tmp_path: Path, serve: Any
) -> None:
    uri = pub.publish(tone_dir, f"s3://{BUCKET}/tone")
    assert uri == f"s3://{BUCKET}/tone/tone-20261020/"
    mounted, _ = kserve_download(uri, tmp_path)
    server = serve(mounted, name="tone")
    answers(server, "tone", ["harsh", "flat", "warm"])
    meta = httpx.get(f"{server.url}/v2/models/tone", timeout=10).json()
    assert meta["name"] == "tone" and meta["outputs"][1]["shape"] == [-1, 3]
    assert 'version="tone-20261020"' in httpx.get(f"{server.url}/metrics", timeout=10).text


# --- bad inputs: refused at publish, and at load the predictor never turns ready ------------------


def _no_card(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "model_card.json").unlink()
    return dst


BAD_DIRS = {
    "missing directory": (lambda src, dst: dst, "does not exist"),
    "no model_card.json": (_no_card, "lacks model_card.json"),
    "labels disagree with the model": (
        lambda src, dst: with_card(src, dst, labels=["a", "b", "c", "d"]),
        "lists 4 labels",
    ),
    "card without labels": (lambda src, dst: with_card(src, dst, labels=None), "labels"),
}


@pytest.mark.parametrize(("make", "message"), BAD_DIRS.values(), ids=list(BAD_DIRS))
def test_a_bad_directory_is_refused_before_anything_is_uploaded(
    s3_env: S3Server, tiny_model_dir: Path, tmp_path: Path, make: Any, message: str
) -> None:
    bad = make(tiny_model_dir, tmp_path / "bad")
    with pytest.raises(pub.PublishError, match=message):
        pub.publish(bad, f"s3://{BUCKET}/bad")
    assert keys("bad/") == []


@pytest.mark.parametrize(("make", "message"), BAD_DIRS.values(), ids=list(BAD_DIRS))
def test_a_bad_mounted_directory_never_serves_and_the_log_says_why(
    tiny_model_dir: Path, tmp_path: Path, make: Any, message: str
) -> None:
    bad = make(tiny_model_dir, tmp_path / "mnt-models")
    server = InProcessPredictor(bad, tmp_path / "log").start()
    ready_seen = False
    deadline = time.monotonic() + 120
    while server.running() and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready_seen |= httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200
        time.sleep(0.1)
    assert server.stop(5) == 1  # what `python -m predictor` exits with
    assert not ready_seen, "a bad model directory turned ready"
    assert "model failed to load" in server.logs() and message in server.logs()


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("hf://org/model", "unknown storage scheme"),
        ("ftp://host/models", "unknown storage scheme"),
        ("models/sentiment", "unknown storage scheme"),
        ("gs://bucket/models", "publish writes s3://, oci:// and pvc://"),
        ("pvc://claim/models", "needs --pvc-root"),
        ("oci://ghcr.io/org/models:v1", "the tag is the card's version"),
        ("s3://UPPER/case", "malformed"),
    ],
)
def test_bad_targets_are_refused(tiny_model_dir: Path, to: str, message: str) -> None:
    with pytest.raises(pub.PublishError, match=message):
        pub.publish(tiny_model_dir, to)


def test_cli_bad_target_exits_1_and_says_why(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert pub.main([str(tiny_model_dir), "--to", "hf://org/model"]) == 1
    assert "unknown storage scheme" in caplog.text


# --- oci:// (modelcar) ----------------------------------------------------------------------------


def test_modelcar_build_push_kserve_download_then_serve(
    oci_registry: Registry, tiny_model_dir: Path, tmp_path: Path, serve: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    card = ServingCard.read(tiny_model_dir)
    repo = f"oci://{oci_registry.host}/models/sentiment"
    started = time.monotonic()
    uri = pub.publish(tiny_model_dir, repo, tls_verify=False)
    built = time.monotonic() - started
    assert uri == f"{repo}:{card.version}"
    # KServe's OCI fetch (the storage initializer's modelcar-less path) reads /models of the image.
    monkeypatch.setenv("KSERVE_OCI_INSECURE_REGISTRY", "true")
    mounted, seconds = kserve_download(uri, tmp_path)
    assert pub.Content.of(mounted) == pub.Content.of(tiny_model_dir)
    print(f"\nmodelcar: build + push {built:.1f} s, kserve fetch {seconds:.1f} s "
          "(contended 2-core host)")  # fmt: skip
    answers(serve(mounted), "sentiment", card.labels)
    # Same bytes again: nothing is rebuilt or pushed, the same URI comes back.
    assert pub.publish(tiny_model_dir, repo, tls_verify=False) == uri
    changed = with_card(tiny_model_dir, tmp_path / "changed", notes="other bytes")
    with pytest.raises(pub.PublishError, match="immutable"):
        pub.publish(changed, repo, tls_verify=False)


def test_modelcar_is_tiny_and_has_what_kserve_runs_in_it(
    oci_registry: Registry, tiny_model_dir: Path
) -> None:
    """KServe's modelcar sidecar runs `sh -c 'ln -sf /proc/$$/root/models /mnt/models && sleep
    infinity'` in the image: busybox gives those; the base adds about 2 MB to the model."""
    uri = pub.publish(tiny_model_dir, f"oci://{oci_registry.host}/models/small", push=False)
    ref = uri.removeprefix("oci://")
    inspect = json.loads(pub._Modelcar.buildah("inspect", "--type", "image", ref).stdout)
    labels = inspect["OCIv1"]["config"]["Labels"]
    assert labels[pub.DIGEST_LABEL] == pub.Content.of(tiny_model_dir).digest
    size = sum(f.stat().st_size for f in tiny_model_dir.rglob("*") if f.is_file())
    mount = pub._Modelcar.buildah("from", ref).stdout.strip()
    try:
        root = Path(pub._Modelcar.buildah("mount", mount).stdout.strip())
        assert (root / "bin" / "busybox").is_file()
        for applet in ("sh", "ln", "sleep"):
            assert (root / "bin" / applet).is_symlink()
        assert sorted(p.name for p in (root / "models").iterdir()) == sorted(
            p.name for p in tiny_model_dir.iterdir()
        )
        assert all(p.stat().st_mode & 0o004 for p in (root / "models").rglob("*"))
        files = [f for f in root.rglob("*") if f.is_file() and not f.is_symlink()]
        base = sum(f.stat().st_size for f in files) - size
        assert base < 4_000_000, f"the modelcar base is {base} bytes"
    finally:
        pub._Modelcar.buildah("umount", mount, check=False)
        pub._Modelcar.buildah("rm", mount, check=False)
