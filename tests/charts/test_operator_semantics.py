"""What the chart does, not only what it renders: NOTES advice applied, autoscaling and network
semantics against what KServe, Knative and KEDA do with the rendered fields (issue 19)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.canary import Rollout, next_values
from mlops.gates import Verdict
from predictor.prediction import Prediction
from predictor.protocol import encode_v1
from tests.charts import chart_tools as ct

pytestmark = pytest.mark.usefixtures("helm_bin")

CI = ct.CHART / "ci"
CANARY_FILES = [
    p for p in ct.CI_VALUES if (yaml.safe_load(p.read_text()).get("canary") or {}).get("enabled")
]


def notes(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> str:
    """NOTES.txt as `helm install` prints it (helm template does not render NOTES)."""
    result = ct.helm(
        "install",
        ct.RELEASE,
        str(ct.CHART),
        "--dry-run=client",
        "-n",
        ct.NAMESPACE,
        *ct.values_args(values, sets),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def advice(text: str) -> dict[str, list[list[str]]]:
    """The `helm upgrade` commands NOTES gives, by heading (Promote, Roll back, Then retire),
    each as its list of --set items."""
    out: dict[str, list[list[str]]] = {}
    heading = ""
    for line in text.splitlines():
        stripped = line.strip()
        if m := re.match(r"(Promote|Roll back|Then retire)\b", stripped):
            heading = m.group(1)
        elif stripped.startswith("helm upgrade") and heading:
            words = shlex.split(stripped)
            assert "--reuse-values" in words, stripped
            sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
            out.setdefault(heading, []).append(sets)
    return out


def flat(values: dict[str, Any], prefix: str = "") -> list[str]:
    """A values override as the `--set` items that write it (booleans as helm spells them)."""
    items: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict):
            items += flat(value, f"{prefix}{key}.")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            items.append(f"{prefix}{key}={text}")
    return items


def isvc_of(values: Path, sets: list[str]) -> ct.Doc:
    return ct.one(ct.render([values], sets), "InferenceService")


def uri(predictor: dict[str, Any]) -> str:
    return str(ct.env_of(ct.container(predictor, "kserve-container"))["STORAGE_URI"])


class Knative:
    """KServe's Serverless traffic rules over Knative revisions, enough to follow a rollout:
    a changed pod template is a new revision, ready only after it starts; without
    canaryTrafficPercent all traffic goes to the latest READY revision (and that one counts as
    rolled out); with it the latest ready gets that share and the last rolled-out one the rest."""

    def __init__(self, isvc: ct.Doc) -> None:
        self.revisions = [self._template(isvc)]
        self.rolled_out = 0

    @staticmethod
    def _template(isvc: ct.Doc) -> str:
        predictor = dict(isvc["spec"]["predictor"])
        predictor.pop("canaryTrafficPercent", None)
        return json.dumps(predictor, sort_keys=True)

    def _split(self, isvc: ct.Doc, latest_ready: int) -> dict[str, int]:
        share = isvc["spec"]["predictor"].get("canaryTrafficPercent")
        traffic: dict[str, int] = {}
        pairs = (
            [(latest_ready, 100)]
            if share is None
            else [(latest_ready, share), (self.rolled_out, 100 - share)]
        )
        for rev, pct in pairs:
            if pct:
                served = uri(json.loads(self.revisions[rev]))
                traffic[served] = traffic.get(served, 0) + pct
        return traffic

    def apply(self, isvc: ct.Doc) -> list[dict[str, int]]:
        """Traffic by storageUri while the upgrade rolls out, then once it has."""
        states = []
        if self._template(isvc) != self.revisions[-1]:
            states.append(self._split(isvc, len(self.revisions) - 1))  # new one not ready yet
            self.revisions.append(self._template(isvc))
        states.append(self._split(isvc, len(self.revisions) - 1))
        if isvc["spec"]["predictor"].get("canaryTrafficPercent") is None:
            self.rolled_out = len(self.revisions) - 1
        return states


def standard_traffic(isvc: ct.Doc) -> dict[str, int]:
    """RawDeployment: the HTTPRoute gives each spec.canary its trafficPercent, stable the rest."""
    canaries = isvc["spec"].get("canary", [])
    traffic = {uri(isvc["spec"]["predictor"]): 100 - sum(c["trafficPercent"] for c in canaries)}
    for c in canaries:
        if c["trafficPercent"]:
            served = uri(c["predictor"])
            traffic[served] = traffic.get(served, 0) + c["trafficPercent"]
    return {k: v for k, v in traffic.items() if v}


def follow(values: Path, steps: list[list[str]]) -> list[dict[str, int]]:
    """Every traffic state from the release before the canary through each upgrade, applied as
    `--reuse-values --set` (the file, then every --set so far)."""
    mode = (yaml.safe_load(values.read_text()).get("predictor") or {}).get("deploymentMode")
    knative = mode in (None, "Knative")
    before = isvc_of(values, ["canary.enabled=false"])
    now = isvc_of(values, [])
    sets: list[str] = []
    if knative:
        model = Knative(before)
        states = model.apply(now)
        for step in steps:
            sets += step
            states += model.apply(isvc_of(values, sets))
        return states
    states = [standard_traffic(before), standard_traffic(now)]
    for step in steps:
        sets += step
        states.append(standard_traffic(isvc_of(values, sets)))
    return states


def test_every_canary_values_file_is_covered() -> None:
    names = {p.name for p in CANARY_FILES}
    assert {
        "knative-canary-values.yaml",
        "standard-canary-values.yaml",
        "keda-values.yaml",
    } <= names


@pytest.mark.parametrize("values", CANARY_FILES, ids=[p.name for p in CANARY_FILES])
def test_notes_print_the_steps_mlops_promote_writes(values: Path) -> None:
    """NOTES' promote and rollback are, --set for --set, mlops.promote's 100% and 0% steps."""
    steps = advice(notes([values]))
    now = dataclasses.replace(Rollout.from_values([values]), percent=50)
    assert steps["Promote"] == [flat(next_values(Verdict.PROMOTE, now))]
    assert steps["Roll back"] == [flat(next_values(Verdict.ROLLBACK, now))]


@pytest.mark.parametrize("values", CANARY_FILES, ids=[p.name for p in CANARY_FILES])
def test_promote_serves_the_candidate_and_rollback_the_stable_model(values: Path) -> None:
    """Apply NOTES' advice to the values and follow the traffic: promoting ends with every
    request on canary.storageUri, rolling back (and retiring the candidate) never sends a
    request anywhere but model.storageUri, not even while a revision starts."""
    doc = yaml.safe_load(values.read_text())
    stable, candidate = doc["model"]["storageUri"], doc["canary"]["storageUri"]
    percent = doc["canary"]["trafficPercent"]
    steps = advice(notes([values]))
    promoted = follow(values, steps["Promote"])
    assert promoted[1] == {stable: 100 - percent, candidate: percent}  # the canary as installed
    assert promoted[-1] == {candidate: 100}
    assert all(set(s) <= {stable, candidate} for s in promoted)
    rolled_back = follow(values, steps["Roll back"] + steps["Then retire"])
    after_rollback = rolled_back[2:]
    assert after_rollback and all(s == {stable: 100} for s in after_rollback), rolled_back


def test_a_knative_rollback_in_one_upgrade_would_serve_the_candidate() -> None:
    """Why NOTES retires a Knative candidate in two upgrades: canary off at once leaves the
    candidate as the latest ready revision until the new one starts."""
    values = CI / "knative-canary-values.yaml"
    doc = yaml.safe_load(values.read_text())
    states = follow(
        values, [["canary.trafficPercent=0"], ["canary.enabled=false", "canary.storageUri="]]
    )
    assert {doc["canary"]["storageUri"]: 100} in states


def test_no_canary_notes_say_how_to_start_one() -> None:
    text = notes()
    assert "none running" in text and "python -m mlops.promote --candidate-uri" in text
    assert advice(text) == {}


# --- KEDA -----------------------------------------------------------------------------------------


def test_keda_threshold_is_per_pod_over_the_summed_load() -> None:
    """KServe's KEDA reconciler copies target.value into the prometheus trigger's threshold and
    leaves its metricType at KEDA's default, AverageValue: the HPA runs ceil(query / threshold)
    pods. So the query must be the total (a sum), and the spec says AverageValue, with the
    averageValue KServe's webhook wants for that type and the value it copies."""
    isvc = isvc_of(CI / "keda-values.yaml", [])
    (metric,) = isvc["spec"]["predictor"]["autoScaling"]["metrics"]
    target = metric["external"]["target"]
    assert target == {"type": "AverageValue", "averageValue": "30", "value": "30"}
    query = metric["external"]["metric"]["query"]
    assert query.startswith("sum(") and " / " not in query and "avg" not in query
    # One pod per 30 requests/s of the sum, whatever the current replica count: no ratchet.
    for total_rps, pods in ((10, 1), (30, 1), (31, 2), (290, 10)):
        assert math.ceil(total_rps / float(target["value"])) == pods
    assert ct.validate_object(isvc) == []


# --- NetworkPolicy in Knative mode ---------------------------------------------------------------

PROBE_PORTS = (6379, 8012, 8013, 8022, 8080, 8081, 8112, 9081, 9090, 9091)


def admitted(policy: ct.Doc, namespace: str, port: int) -> bool:
    """Does the policy let a pod of `namespace` reach `port`? (namespaceSelector by name,
    podSelector {} for the release namespace, the only peer shapes the chart renders)."""
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        for peer in rule.get("from", []):
            names = peer.get("namespaceSelector", {}).get("matchLabels", {})
            if names.get("kubernetes.io/metadata.name") == namespace:
                return True
            same_namespace = "podSelector" in peer and "namespaceSelector" not in peer
            if same_namespace and namespace == ct.NAMESPACE:
                return True
    return False


def predictor_policy(values: Sequence[Path] = (), sets: Sequence[str] = ()) -> ct.Doc:
    docs = ct.render(values, sets)
    return next(
        d
        for d in ct.by_kind(docs, "NetworkPolicy")
        if d["metadata"]["name"] == "sentiment-predictor"
    )


def open_ports(policy: ct.Doc, namespace: str) -> set[int]:
    return {p for p in PROBE_PORTS if admitted(policy, namespace, p)}


def test_knative_mode_admits_what_knative_serving_needs_and_nothing_wider() -> None:
    """Activator -> queue-proxy 8012/8013, autoscaler scrape 9090, queue-proxy admin 8022; the
    gateways reach queue-proxy only; kserve-container's 8080 is for the metrics scrape."""
    policy = predictor_policy()
    assert open_ports(policy, "knative-serving") == {8012, 8013, 8022, 9090}
    assert open_ports(policy, "istio-system") == {8012, 8013}
    assert open_ports(policy, ct.NAMESPACE) == {8012, 8013}
    assert open_ports(policy, "monitoring") == {8080}
    assert open_ports(policy, "default") == set()
    moved = predictor_policy(sets=["networkPolicy.knativeNamespace=knative-system"])
    assert open_ports(moved, "knative-system") == {8012, 8013, 8022, 9090}


def test_standard_mode_opens_the_container_ports_to_callers() -> None:
    policy = predictor_policy([CI / "standard-hpa-values.yaml"])
    assert open_ports(policy, "istio-system") == {8080, 8081}
    assert open_ports(policy, "knative-serving") == {8080, 8081}  # a listed caller, no more


def test_chart_readme_names_the_knative_ports_and_links_the_doc() -> None:
    readme = (ct.CHART / "README.md").read_text()
    section = readme.split("### NetworkPolicy", 1)[1].split("\n## ", 1)[0]
    for port in ("8012", "8013", "8022", "9090"):
        assert port in section
    assert "https://knative.dev/" in section


# --- the mlops cycle's memory ---------------------------------------------------------------------

QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def bytes_of(quantity: str) -> float:
    m = re.fullmatch(r"([\d.]+)([KMG]i?)?", quantity)
    assert m, quantity
    return float(m.group(1)) * QUANTITY.get(m.group(2) or "", 1)


def test_cycle_memory_fits_the_measured_build_peak_with_headroom() -> None:
    """The root README's measured quick-build peak RSS, 20 % headroom at least under the limit,
    the request at the peak (the node must have it), and the figure stated beside the value."""
    readme = (ct.REPO / "README.md").read_text()
    m = re.search(r"([\d.]+) GB peak RSS", readme)
    assert m, "the README's build figure moved: update this test with it"
    peak = float(m.group(1)) * 10**9
    docs = ct.render([CI / "mlops-cycle-values.yaml"])
    job = ct.one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = job["containers"]
    assert bytes_of(c["resources"]["limits"]["memory"]) >= 1.2 * peak
    assert bytes_of(c["resources"]["requests"]["memory"]) >= peak
    values_text = (ct.CHART / "values.yaml").read_text()
    doc = next(line for line in values_text.splitlines() if "@param mlops.cycle.resources" in line)
    assert f"{m.group(1)} GB" in doc


# --- values files that agree with themselves ------------------------------------------------------


def test_the_cycle_serves_the_directory_stable_dir_names() -> None:
    """model.storageUri on the cycle's claim is the stableDir version, not its parent."""
    docs = ct.render([CI / "mlops-cycle-values.yaml"])
    (c,) = ct.one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = dict(
        a.removeprefix("--").split("=", 1) for a in c["args"] if a.startswith("--") and "=" in a
    )
    claim = ct.by_kind(docs, "PersistentVolumeClaim")[0]["metadata"]["name"]
    served = uri(ct.one(docs, "InferenceService")["spec"]["predictor"])
    assert served == f"pvc://{claim}/" + args["stable"].removeprefix(args["pvc-root"] + "/")
    assert args["stable-uri"] == served
    assert served.rsplit("/", 1)[0] == args["publish-to"]  # candidates land beside it


def test_the_cycle_refuses_to_serve_the_parent_of_the_versions() -> None:
    result = ct.template_text(
        sets=[
            "mlops.cycle.enabled=true",
            "mlops.cycle.stableDir=/mnt/models/sentiment/v1",
            "apiTokens.reader.existingSecret=readers",
        ]
    )
    assert result.returncode != 0
    assert "parent of the version directories" in result.stderr


def test_no_values_file_canaries_an_image_from_before_storage_uris() -> None:
    """A model version is a storageUri: no ci file's canary is an image tag alone."""
    for path in CANARY_FILES:
        canary = yaml.safe_load(path.read_text())["canary"]
        assert canary.get("storageUri"), path.name
        assert not (canary.get("image") or {}).get("tag"), path.name


# --- the default install --------------------------------------------------------------------------


def test_the_default_install_does_not_warn_about_itself_and_names_its_claim() -> None:
    text = notes()
    assert "WARNING" not in text
    assert "PersistentVolumeClaim sentiment-models in namespace sentiment" in text
    assert "at sentiment/ on it" in text
    isvc = ct.one(ct.render(), "InferenceService")
    assert isvc["spec"]["predictor"]["maxReplicas"] == 1  # one pod, one sidecar Redis
    assert "PersistentVolumeClaim" not in notes([CI / "knative-values.yaml"])  # s3: no claim


def test_chart_readme_install_creates_the_claim_first() -> None:
    readme = (ct.CHART / "README.md").read_text()
    install = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "sentiment-models" in install and "helm install" in install
    assert install.index("sentiment-models") < install.index("helm install")


# --- payload logging ------------------------------------------------------------------------------

LOGGER = [
    "logger.enabled=true",
    "logger.mode=request",
    "logger.url=http://message-dumper.logging.svc.cluster.local:8080/",
]


def test_logger_is_off_by_default() -> None:
    isvc = ct.one(ct.render(), "InferenceService")
    assert "logger" not in isvc["spec"]["predictor"]


@pytest.mark.parametrize("values", [CI / "knative-values.yaml", CI / "standard-canary-values.yaml"])
def test_logger_maps_to_kserve_and_opens_egress_to_its_port(
    values: Path, shared_crds: Path
) -> None:
    docs = ct.render([values], LOGGER)
    isvc = ct.one(docs, "InferenceService")
    canaries = isvc["spec"].get("canary", [])
    predictors = [isvc["spec"]["predictor"]] + [c["predictor"] for c in canaries]
    for p in predictors:
        assert p["logger"] == {
            "mode": "request",
            "url": "http://message-dumper.logging.svc.cluster.local:8080/",
        }
    assert ct.validate_object(isvc) == []  # against the real InferenceService CRD
    policy = predictor_policy([values], LOGGER)
    egress_ports = [[p["port"] for p in r["ports"]] for r in policy["spec"]["egress"]]
    assert [8080] in egress_ports
    if "standard" in values.name:  # KServe's Service then targets the agent sidecar
        assert 9081 in open_ports(policy, "istio-system")
    else:
        assert 9081 not in open_ports(policy, "istio-system")


@pytest.mark.parametrize(
    ("url", "port"), [("https://logs.example.com/in", 443), ("http://dumper.logging", 80)]
)
def test_logger_egress_port_defaults_by_scheme(url: str, port: int) -> None:
    policy = predictor_policy(sets=["logger.enabled=true", f"logger.url={url}"])
    assert [port] in [[p["port"] for p in r["ports"]] for r in policy["spec"]["egress"]]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["logger.enabled=true"], "logger.url"),
        (["logger.mode=everything"], "mode"),
        (["logger.url=kafka://broker:9092"], "url"),
    ],
)
def test_logger_values_are_checked(sets: list[str], message: str) -> None:
    result = ct.template_text(sets=sets)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- helm test runs one inference -----------------------------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    """The predictor's routes the helm test calls, answering `answer` to :predict."""

    answer: dict[str, Any] = {}

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v2/models/sentiment":
            self._send(
                {
                    "outputs": [
                        {"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "probabilities", "shape": [-1, 3]},
                    ]
                }
            )
        else:
            self._send({"ready": True})

    def do_POST(self) -> None:
        assert self.path == "/v1/models/sentiment:predict"
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert request == {"instances": ["what a great day"]}
        self._send(type(self).answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Handler", (_Stub,), {"answer": {}})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()


def _run_test_pod(base: str) -> subprocess.CompletedProcess[str]:
    pod = next(d for d in ct.by_kind(ct.render(sets=[f"tests.url={base}"]), "Pod"))
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["python", "-c"]
    return subprocess.run(
        [sys.executable, "-c", c["args"][0]], capture_output=True, text=True, timeout=60
    )


def test_helm_test_runs_one_inference_and_accepts_the_predictors_answer(
    stub: tuple[str, type[_Stub]],
) -> None:
    base, handler = stub
    probs = {"negative": 0.05, "neutral": 0.15, "positive": 0.8}
    handler.answer = encode_v1([Prediction("positive", 0.8, probs)])
    result = _run_test_pod(base)
    assert result.returncode == 0, result.stderr
    assert ":predict" in result.stdout


@pytest.mark.parametrize(
    "answer",
    [
        {"predictions": []},
        encode_v1([Prediction("joy", 0.8, {"negative": 0.1, "positive": 0.1, "neutral": 0.8})]),
        encode_v1([Prediction("positive", 0.5, {"negative": 0.5, "positive": 0.5})]),
        encode_v1([Prediction("neutral", 0.2, {"negative": 0.1, "neutral": 0.2, "positive": 0.7})]),
        encode_v1(
            [Prediction("positive", 0.9, {"negative": 0.3, "neutral": 0.3, "positive": 0.9})]
        ),
    ],
    ids=["none", "label-not-a-label", "too-few-labels", "not-the-argmax", "sum-1.5"],
)
def test_helm_test_fails_on_a_wrong_answer(
    stub: tuple[str, type[_Stub]], answer: dict[str, Any]
) -> None:
    base, handler = stub
    handler.answer = answer
    result = _run_test_pod(base)
    assert result.returncode != 0, result.stdout


def test_helm_test_pod_is_as_restricted_as_the_predictor() -> None:
    docs = ct.render()
    pod = next(d for d in ct.by_kind(docs, "Pod"))
    values = yaml.safe_load((ct.CHART / "values.yaml").read_text())
    assert pod["spec"]["securityContext"] == values["podSecurityContext"]
    (c,) = pod["spec"]["containers"]
    assert c["securityContext"] == values["containerSecurityContext"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert ct.validate_object(pod) == []
