"""A rendered predictor pod spec as podman would run it, with nothing silently dropped.

Why: the chart's pod is only proven when what `helm template` renders is what runs. This module
is the pure half (no process is started): it takes the rendered objects, adds what KServe's
webhook adds for the container's STORAGE_URI (the storage initializer, the PVC mount or the
modelcar, as KServe's `pkg/webhook/admission/pod` does), resolves env from the rendered or given
Secrets and ConfigMaps, expands `$(VAR)` as the kubelet does, and turns every container into
`podman create` arguments. Every field it reads is taken out of a copy of the spec; whatever is
left afterwards is listed in `PodPlan.unhonoured`, and `PodPlan.check()` fails on each entry that
is not in the named allow-list (`ALLOWED`, each with the reason it may be left). `harness.kubelet`
runs a plan: volumes, storage, the pod, probes and termination.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Doc = dict[str, Any]

PODMAN_SECCOMP = "/usr/share/containers/seccomp.json"  # podman's (and containerd's) default
MODEL_MOUNT = "/mnt/models"  # KServe's DefaultModelLocalMountPath
PROVISION_VOLUME = "kserve-provision-location"  # KServe's StorageInitializerVolumeName
PVC_VOLUME = "kserve-pvc-source"  # KServe's PvcSourceMountName
STORAGE_INITIALIZER_IMAGE = "kserve/storage-initializer:v0.21.0"
# The fields KServe itself reads off spec.predictor (scaling, routing, logging): not pod fields.
KSERVE_PREDICTOR_FIELDS = (
    "minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "labels", "annotations", "logger",
    "name", "batcher", "deploymentStrategy",
)  # fmt: skip

# Fields the harness leaves unhonoured on purpose, by path pattern, each with why that is fine.
ALLOWED: dict[str, str] = {
    "*.resources.requests.memory": "scheduling and the QoS class only; no cgroup setting",
    "predictor.*": "KServe/Knative scaling and routing of spec.predictor, not a pod field",
    "canary.*": "KServe scaling and routing of spec.canary[].predictor, not a pod field",
    "knative.queue-proxy": "Knative's queue-proxy sidecar is not added; the harness probes the "
    "container's own paths, which queue-proxy forwards the same way",
    "initContainers[storage-initializer].image": "KServe's own storage code (the kserve-storage "
    "package of the same version) runs on the host instead: no registry for the image here",
    "initContainers[storage-initializer].resources": "runs as a host process, not a container",
    "nodeSelector.*": "scheduling: there is one node",
    "tolerations": "scheduling: there is one node",
    "affinity.*": "scheduling: there is one node",
    "topologySpreadConstraints": "scheduling: there is one node",
    "priorityClassName": "scheduling: there is one node",
    "imagePullSecrets": "registry credentials: images are local",
}

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9,
    "T": 10**12, "m": 0.001, "": 1,
}  # fmt: skip


class PlanError(ValueError):
    """The pod cannot be built at all (a missing Secret, claim or container)."""


class UnhonouredFields(AssertionError):
    """Fields of the spec the harness cannot honour and no allow-list entry excuses."""


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("250m", "2Gi", 2) as a number of base units."""
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not m or m.group(2) not in _SUFFIX:
        raise PlanError(f"not a Kubernetes quantity: {value!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` is `$`, unknown names stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


class Fields:
    """One spec object being translated: what is read is taken, what is left was not honoured."""

    def __init__(self, data: Mapping[str, Any] | None, path: str) -> None:
        self.data: dict[str, Any] = copy.deepcopy(dict(data or {}))
        self.path = path
        self.children: list[Fields] = []

    def take(self, key: str, default: Any = None) -> Any:
        return self.data.pop(key, default)

    def sub(self, key: str) -> Fields:
        child = Fields(self.data.pop(key, None), f"{self.path}.{key}" if self.path else key)
        self.children.append(child)
        return child

    def each(self, key: str) -> list[Fields]:
        """A list of objects, each addressed by its name (or index) in the path."""
        out = []
        for i, item in enumerate(self.data.pop(key, None) or []):
            name = item.get("name", i) if isinstance(item, dict) else i
            child = Fields(item, f"{self.path}.{key}[{name}]" if self.path else f"{key}[{name}]")
            out.append(child)
        self.children += out
        return out

    def left(self) -> list[str]:
        """Paths of every leaf nobody took, here and below."""
        out: list[str] = []

        def walk(node: Any, path: str) -> None:
            if isinstance(node, dict) and node:
                for k, v in node.items():
                    walk(v, f"{path}.{k}" if path else k)
            elif node not in ({}, None):
                out.append(path)

        walk(self.data, self.path)
        for child in self.children:
            out += child.left()
        return out


# --- what KServe adds for a storageUri -----------------------------------------------------------


def _env_value(container: Doc, name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def s3_credentials_env(service_account: Doc | None, secrets: Mapping[str, Doc]) -> list[Doc]:
    """The storage initializer's env from the ServiceAccount's Secrets, as KServe's
    credential builder writes it (pkg/credentials/s3: keys and serving.kserve.io/s3-* notes)."""
    env: list[Doc] = []
    for ref in (service_account or {}).get("secrets", []):
        secret = secrets.get(ref["name"])
        if secret is None:
            raise PlanError(f"ServiceAccount names Secret {ref['name']!r}, which is not given")
        data = secret_data(secret)
        notes = secret.get("metadata", {}).get("annotations", {})
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if key in data:
                selector = {"name": ref["name"], "key": key}
                env.append({"name": key, "valueFrom": {"secretKeyRef": selector}})
        https = notes.get("serving.kserve.io/s3-usehttps")
        if https is not None:
            env.append({"name": "S3_USE_HTTPS", "value": https})
        endpoint = notes.get("serving.kserve.io/s3-endpoint")
        if endpoint:
            scheme = "http" if https == "0" else "https"
            env.append({"name": "S3_ENDPOINT", "value": endpoint})
            env.append({"name": "AWS_ENDPOINT_URL", "value": f"{scheme}://{endpoint}"})
        if "serving.kserve.io/s3-verifyssl" in notes:
            env.append({"name": "S3_VERIFY_SSL", "value": notes["serving.kserve.io/s3-verifyssl"]})
        if "serving.kserve.io/s3-region" in notes:
            env.append(
                {"name": "AWS_DEFAULT_REGION", "value": notes["serving.kserve.io/s3-region"]}
            )
    return env


def kserve_inject(pod: Doc, service_account: Doc | None, secrets: Mapping[str, Doc]) -> Doc:
    """The pod spec after KServe's webhook, for the STORAGE_URI env of kserve-container."""
    pod = copy.deepcopy(pod)
    main = next((c for c in pod["containers"] if c["name"] == "kserve-container"), None)
    if main is None:
        raise PlanError("the predictor has no kserve-container")
    uri = _env_value(main, "STORAGE_URI")
    if not uri:
        return pod
    volumes, mounts = pod.setdefault("volumes", []), main.setdefault("volumeMounts", [])
    if uri.startswith("pvc://"):
        claim, _, sub = uri.removeprefix("pvc://").partition("/")
        volumes.append({"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
        mount = {"name": PVC_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True}
        mounts.append({**mount, "subPath": sub} if sub else mount)
    elif uri.startswith("oci://"):
        image = uri.removeprefix("oci://")
        main["env"].append({"name": "MODEL_INIT_MODE", "value": "async"})
        volumes.append({"name": PROVISION_VOLUME, "emptyDir": {}})
        mounts.append({"name": PROVISION_VOLUME, "mountPath": "/mnt", "readOnly": False})
        small = {"cpu": "10m", "memory": "15Mi"}
        pod["containers"].append(
            {
                "name": "modelcar",
                "image": image,
                "args": [
                    "sh",
                    "-c",
                    f"ln -sf /proc/$$$$/root/models {MODEL_MOUNT} && sleep infinity",
                ],
                "volumeMounts": [
                    {"name": PROVISION_VOLUME, "mountPath": "/mnt", "readOnly": False}
                ],
                "resources": {"limits": small, "requests": small},
            }
        )
        check = (
            f"echo 'Pre-fetching modelcar {image}: ' && [ -d /models ] && "
            "[ \"$$(ls -A /models)\" ] && echo 'OK ... Prefetched and valid (/models exists)' || "
            "(echo 'NOK ... Prefetched but modelcar is invalid (/models does not exist or is "
            "empty)' && exit 1)"
        )
        init: Doc = {"name": "modelcar-init", "image": image, "args": ["sh", "-c", check]}
        pod.setdefault("initContainers", []).append(
            {**init, "resources": {"limits": small, "requests": small}}
        )
        pod["shareProcessNamespace"] = True
    else:  # s3://, gs://, https://: the storage initializer downloads into an emptyDir
        volumes.append({"name": PROVISION_VOLUME, "emptyDir": {}})
        mounts.append({"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": True})
        init = {
            "name": "storage-initializer",
            "image": STORAGE_INITIALIZER_IMAGE,
            "args": [uri, MODEL_MOUNT],
            "env": s3_credentials_env(service_account, secrets) if uri.startswith("s3://") else [],
            "volumeMounts": [
                {"name": PROVISION_VOLUME, "mountPath": MODEL_MOUNT, "readOnly": False}
            ],
            "resources": {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "100m", "memory": "100Mi"},
            },
        }
        pod.setdefault("initContainers", []).append(init)
    return pod


# --- the plan ------------------------------------------------------------------------------------


def secret_data(secret: Doc) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def configmap_data(configmap: Doc) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    return out


@dataclass(frozen=True)
class Probe:
    """One probe of one container, with the kubelet's defaults filled in."""

    kind: str  # startup, readiness, liveness
    container: str
    action: str  # http, exec, tcp
    target: tuple[str, ...]  # http: (scheme, path, port); exec: argv; tcp: (port,)
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @property
    def budget(self) -> float:
        """Longest the kubelet waits before it acts on failures."""
        return self.initial_delay + self.period * self.failure_threshold


@dataclass(frozen=True)
class Hook:
    """A lifecycle handler: sleep (seconds), exec (argv) or http (scheme, path, port)."""

    action: str
    target: tuple[str, ...]


@dataclass
class Volume:
    """A pod volume as the host directory (or tmpfs) the kubelet would materialise."""

    name: str
    kind: str  # emptyDir, secret, configMap, pvc
    host: Path
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    tmpfs_bytes: int | None = None  # emptyDir medium Memory: a tmpfs of this size
    size_limit: int | None = None  # emptyDir on disk: the kubelet evicts past it
    gid: int | None = None  # fsGroup
    read_only: bool = False  # secret and configMap volumes are always mounted read-only


@dataclass
class Container:
    """One container: its `podman create` arguments and what the kubelet does around it."""

    name: str
    image: str
    create_args: list[str]
    command: list[str]  # after $(VAR) expansion, as the kubelet hands them to the runtime
    args: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    probes: list[Probe]
    pre_stop: Hook | None = None
    host_process: bool = False  # the storage initializer: KServe's code run on the host


@dataclass
class PodPlan:
    """A pod ready to run: volumes, init containers, containers and the kubelet's numbers."""

    name: str
    role: str
    knative: bool
    volumes: dict[str, Volume]
    init_containers: list[Container]
    containers: list[Container]
    pod_args: list[str]
    grace_seconds: float
    storage_uri: str | None
    unhonoured: list[str]

    def not_allowed(self, allowed: Mapping[str, str] = ALLOWED) -> list[str]:
        """The unhonoured fields no pattern of `allowed` matches (`*` is any text)."""
        rx = [re.compile(re.escape(a).replace(r"\*", ".*")) for a in allowed]
        return [p for p in self.unhonoured if not any(r.fullmatch(p) for r in rx)]

    def check(self, allowed: Mapping[str, str] = ALLOWED) -> PodPlan:
        """Fail on every unhonoured field no allow-list entry names."""
        bad = self.not_allowed(allowed)
        if bad:
            raise UnhonouredFields(f"pod {self.name}: fields the harness cannot honour: {bad}")
        return self

    def container(self, name: str) -> Container:
        return next(c for c in [*self.init_containers, *self.containers] if c.name == name)


def predictors(docs: Sequence[Doc]) -> list[tuple[str, Doc, Doc]]:
    """(role, InferenceService, predictor spec) for spec.predictor and each spec.canary[]."""
    out = []
    for isvc in (d for d in docs if d.get("kind") == "InferenceService"):
        out.append(("predictor", isvc, isvc["spec"]["predictor"]))
        out += [("canary", isvc, c["predictor"]) for c in isvc["spec"].get("canary", [])]
    return out


def _objects(docs: Sequence[Doc], kind: str, extra: Sequence[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in [*docs, *extra] if d.get("kind") == kind}


def plan_pod(
    docs: Sequence[Doc],
    workdir: Path,
    *,
    role: str = "predictor",
    name: str | None = None,
    objects: Sequence[Doc] = (),
    claims: Mapping[str, Path] | None = None,
) -> PodPlan:
    """The plan for one predictor pod of a render. `objects` are Secrets and ConfigMaps that
    exist in the cluster beside the render; `claims` maps PVC names to host directories."""
    found = [(r, isvc, p) for r, isvc, p in predictors(docs) if r == role]
    if not found:
        raise PlanError(f"the render has no {role} pod")
    _, isvc, predictor = found[0]
    secrets = _objects(docs, "Secret", objects)
    configmaps = _objects(docs, "ConfigMap", objects)
    accounts = _objects(docs, "ServiceAccount", objects)
    notes = isvc["metadata"].get("annotations", {})
    knative = notes.get("serving.kserve.io/deploymentMode", "Knative") == "Knative"
    pod_name = name or f"{isvc['metadata']['name']}-{role}"

    # spec.predictor's own KServe fields (scaling, routing) are accounted for, never run.
    unhonoured = [f"{role}.{k}" for k in KSERVE_PREDICTOR_FIELDS if k in predictor]
    pod_spec = {k: v for k, v in predictor.items() if k not in KSERVE_PREDICTOR_FIELDS}
    account = accounts.get(pod_spec.get("serviceAccountName", "default"))
    spec = kserve_inject(pod_spec, account, secrets)
    pod = Fields(spec, "")
    if knative:
        unhonoured.append("knative.queue-proxy")

    pod.take("serviceAccountName")  # read by kserve_inject for the storage credentials
    if pod.take("automountServiceAccountToken", True):
        unhonoured.append("automountServiceAccountToken")  # there is no API server token
    grace = float(pod.take("terminationGracePeriodSeconds", 30))
    share_pid = bool(pod.take("shareProcessNamespace", False))
    psc = pod.sub("securityContext")
    fs_group = psc.take("fsGroup")
    extra_groups = [int(g) for g in psc.take("supplementalGroups", [])]

    volumes: dict[str, Volume] = {}
    for vol in pod.each("volumes"):
        v = _volume(vol, workdir / "volumes", secrets, configmaps, claims or {}, fs_group)
        volumes[v.name] = v
    init = [
        _container(c, pod_name, psc.data, fs_group, extra_groups, volumes, secrets, configmaps)
        for c in pod.each("initContainers")
    ]
    main = [
        _container(c, pod_name, psc.data, fs_group, extra_groups, volumes, secrets, configmaps)
        for c in pod.each("containers")
    ]
    for c in init:
        if c.name == "storage-initializer":  # KServe's code, run on the host
            c.host_process = True
            unhonoured += [f"initContainers[{c.name}].image", f"initContainers[{c.name}].resources"]
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
        psc.take(key)  # applied to every container above
    share = "pid,ipc,net,uts" if share_pid else "ipc,net,uts"
    pod_args = ["--name", pod_name, "--hostname", pod_name, "--share", share]
    return PodPlan(
        name=pod_name, role=role, knative=knative, volumes=volumes, init_containers=init,
        containers=main, pod_args=pod_args, grace_seconds=grace,
        storage_uri=_env_value(spec["containers"][0], "STORAGE_URI"),
        unhonoured=unhonoured + pod.left(),
    )  # fmt: skip


def _volume(
    vol: Fields,
    root: Path,
    secrets: Mapping[str, Doc],
    configmaps: Mapping[str, Doc],
    claims: Mapping[str, Path],
    fs_group: int | None,
) -> Volume:
    name = vol.take("name")
    host = root / name
    if "emptyDir" in vol.data:
        ed = vol.sub("emptyDir")
        medium, limit = ed.take("medium", ""), ed.take("sizeLimit")
        size = int(quantity(limit)) if limit is not None else None
        if medium == "Memory":
            # The kubelet sizes a memory emptyDir's tmpfs to sizeLimit (else the pod's memory).
            return Volume(name, "emptyDir", host, tmpfs_bytes=size or 64 * 2**20, gid=fs_group)
        if medium:
            raise PlanError(f"emptyDir medium {medium!r}")
        return Volume(name, "emptyDir", host, size_limit=size, gid=fs_group)
    if "secret" in vol.data or "configMap" in vol.data:
        kind = "secret" if "secret" in vol.data else "configMap"
        src = vol.sub(kind)
        ref = src.take("secretName" if kind == "secret" else "name")
        mode = int(src.take("defaultMode", 0o644))
        files = _source_files(name, kind, ref, src, mode, secrets, configmaps, fs_group)
        return Volume(name, kind, host, files=files, gid=fs_group, read_only=True)
    if "projected" in vol.data:
        # Several Secrets / ConfigMaps in one directory (the chart's API-token files).
        pj = vol.sub("projected")
        mode = int(pj.take("defaultMode", 0o644))
        files = {}
        for source in pj.each("sources"):
            if "secret" not in source.data and "configMap" not in source.data:
                raise PlanError(
                    f"volume {name}: unsupported projected source {sorted(source.data)}"
                )
            kind = "secret" if "secret" in source.data else "configMap"
            src = source.sub(kind)
            ref = src.take("name")
            files.update(_source_files(name, kind, ref, src, mode, secrets, configmaps, fs_group))
        return Volume(name, "secret", host, files=files, gid=fs_group, read_only=True)
    if "persistentVolumeClaim" in vol.data:
        pvc = vol.sub("persistentVolumeClaim")
        claim = pvc.take("claimName")
        ro = bool(pvc.take("readOnly", False))
        if claim not in claims:
            raise PlanError(f"volume {name}: no host directory given for claim {claim!r}")
        return Volume(name, "pvc", Path(claims[claim]), read_only=ro)
    raise PlanError(f"volume {name}: unsupported source {sorted(vol.data)}")


def _source_files(
    volume: str,
    kind: str,
    ref: str,
    src: Fields,
    mode: int,
    secrets: Mapping[str, Doc],
    configmaps: Mapping[str, Doc],
    fs_group: int | None,
) -> dict[str, tuple[bytes, int]]:
    """The files one Secret or ConfigMap source puts in a volume (its `items`, else every key),
    with the modes the kubelet gives them."""
    optional = src.take("optional", False)
    source = (secrets if kind == "secret" else configmaps).get(ref)
    if source is None and not optional:
        raise PlanError(f"volume {volume}: {kind} {ref!r} is neither rendered nor given")
    data = (secret_data if kind == "secret" else configmap_data)(source) if source else {}
    items = [(i.take("key"), i.take("path"), i.take("mode")) for i in src.each("items")]
    files: dict[str, tuple[bytes, int]] = {}
    for key, path, item_mode in items or [(k, k, None) for k in data]:
        if key not in data:
            raise PlanError(f"volume {volume}: {kind} {ref!r} has no key {key!r}")
        # fsGroup on an atomic-writer volume: group fsGroup and the read bits for it.
        file_mode = int(item_mode if item_mode is not None else mode)
        files[path] = (data[key], file_mode | (0o440 if fs_group is not None else 0))
    return files


def _env(
    c: Fields, pod_name: str, secrets: Mapping[str, Doc], configmaps: Mapping[str, Doc]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in c.each("env"):
        key = item.take("name")
        if "value" in item.data:
            env[key] = expand(str(item.take("value")), env)
            continue
        src = item.sub("valueFrom")
        if "secretKeyRef" in src.data or "configMapKeyRef" in src.data:
            kind = "secretKeyRef" if "secretKeyRef" in src.data else "configMapKeyRef"
            ref = src.sub(kind)
            obj_name, obj_key, optional = ref.take("name"), ref.take("key"), ref.take("optional")
            pool = secrets if kind == "secretKeyRef" else configmaps
            obj = pool.get(obj_name)
            data = {} if obj is None else (
                secret_data(obj) if kind == "secretKeyRef" else configmap_data(obj)
            )  # fmt: skip
            if obj_key in data:
                env[key] = data[obj_key].decode()
            elif not optional:
                raise PlanError(
                    f"env {key}: {kind} {obj_name}/{obj_key} is neither rendered nor given"
                )
        elif "fieldRef" in src.data:
            path = src.sub("fieldRef").take("fieldPath")
            if path != "metadata.name":
                raise PlanError(f"env {key}: fieldRef {path} is not supported")
            env[key] = pod_name
    return env


def _probe(kind: str, container: str, p: Fields, ports: Mapping[str, int]) -> Probe:
    def port_of(value: Any) -> str:
        return str(ports[value]) if isinstance(value, str) and not value.isdigit() else str(value)

    headers: tuple[tuple[str, str], ...] = ()
    if "httpGet" in p.data:
        h = p.sub("httpGet")
        target: tuple[str, ...] = (
            h.take("scheme", "HTTP").lower(), h.take("path", "/"), port_of(h.take("port")),
        )  # fmt: skip
        headers = tuple((x.take("name"), x.take("value")) for x in h.each("httpHeaders"))
        action = "http"
    elif "exec" in p.data:
        action, target = "exec", tuple(p.sub("exec").take("command"))
    elif "tcpSocket" in p.data:
        action, target = "tcp", (port_of(p.sub("tcpSocket").take("port")),)
    else:
        raise PlanError(f"{container} {kind} probe: handler {sorted(p.data)} is not supported")
    return Probe(
        kind=kind, container=container, action=action, target=target, headers=headers,
        initial_delay=float(p.take("initialDelaySeconds", 0)),
        period=float(p.take("periodSeconds", 10)),
        timeout=float(p.take("timeoutSeconds", 1)),
        success_threshold=int(p.take("successThreshold", 1)),
        failure_threshold=int(p.take("failureThreshold", 3)),
    )  # fmt: skip


def _hook(h: Fields, ports: Mapping[str, int]) -> Hook:
    if "sleep" in h.data:
        return Hook("sleep", (str(h.sub("sleep").take("seconds")),))
    if "exec" in h.data:
        return Hook("exec", tuple(h.sub("exec").take("command")))
    if "httpGet" in h.data:
        g = h.sub("httpGet")
        port = g.take("port")
        port = ports.get(port, port) if isinstance(port, str) else port
        return Hook("http", (g.take("scheme", "HTTP").lower(), g.take("path", "/"), str(port)))
    raise PlanError(f"lifecycle handler {sorted(h.data)} is not supported")


def _container(
    c: Fields,
    pod_name: str,
    pod_sc: Mapping[str, Any],
    fs_group: int | None,
    extra_groups: Sequence[int],
    volumes: Mapping[str, Volume],
    secrets: Mapping[str, Doc],
    configmaps: Mapping[str, Doc],
) -> Container:
    name = c.take("name")
    image = c.take("image")
    args = ["--pod", pod_name, "--name", f"{pod_name}-{name}"]
    pull = {"IfNotPresent": "missing", "Never": "never", "Always": "always"}
    args += ["--pull", pull[c.take("imagePullPolicy", "IfNotPresent")]]

    sc = c.sub("securityContext")
    merged = {**pod_sc, **sc.data}
    user, group = merged.get("runAsUser"), merged.get("runAsGroup")
    if merged.get("runAsNonRoot") and (user is None or int(user) == 0):
        raise PlanError(f"{name}: runAsNonRoot needs a numeric non-zero runAsUser here")
    if user is not None:
        args += ["--user", f"{user}:{group}" if group is not None else str(user)]
    for gid in [*([fs_group] if fs_group is not None else []), *extra_groups]:
        args += ["--group-add", str(gid)]
    seccomp = merged.get("seccompProfile", {}).get("type")
    if seccomp == "RuntimeDefault":
        args += ["--security-opt", f"seccomp={PODMAN_SECCOMP}"]
    elif seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp is not None:
        raise PlanError(f"{name}: seccompProfile {seccomp} is not supported")
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
        sc.take(key)
    if sc.take("readOnlyRootFilesystem", False):
        # Not podman's default of tmpfs on /tmp, /var/tmp and /run: only what the spec mounts.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if sc.take("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.take("privileged", False):
        args += ["--privileged"]
    caps = sc.sub("capabilities")
    args += [a for cap in caps.take("drop", []) for a in ("--cap-drop", cap)]
    args += [a for cap in caps.take("add", []) for a in ("--cap-add", cap)]

    res = c.sub("resources")
    limits, requests = res.sub("limits"), res.sub("requests")
    if (cpu := limits.take("cpu")) is not None:
        args += ["--cpus", f"{quantity(cpu):g}"]
    if (mem := limits.take("memory")) is not None:
        args += ["--memory", str(int(quantity(mem))), "--memory-swap", str(int(quantity(mem)))]
    if (cpu_req := requests.take("cpu")) is not None:  # the kubelet's cpu.shares from requests
        args += ["--cpu-shares", str(max(2, int(quantity(cpu_req) * 1024)))]

    env = _env(c, pod_name, secrets, configmaps)
    args += [a for k, v in env.items() for a in ("-e", f"{k}={v}")]

    ports: dict[str, int] = {}
    for p in c.each("ports"):
        number = int(p.take("containerPort"))
        if p.take("protocol", "TCP") != "TCP":
            raise PlanError(f"{name}: only TCP ports")
        ports[p.take("name") or str(number)] = number

    for m in c.each("volumeMounts"):
        vname, path = m.take("name"), m.take("mountPath")
        if vname not in volumes:
            raise PlanError(f"{name}: volumeMount {vname!r} names no volume")
        vol = volumes[vname]
        source = vol.host / m.take("subPath", "")
        ro = bool(m.take("readOnly", False)) or vol.read_only
        args += [
            "--mount",
            f"type=bind,source={source},destination={path}" + (",ro=true" if ro else ""),
        ]

    if (workdir := c.take("workingDir")) is not None:
        args += ["--workdir", workdir]
    command = [expand(a, env) for a in c.take("command") or []]
    cmd_args = [expand(a, env) for a in c.take("args") or []]
    if command:
        args += ["--entrypoint", json.dumps(command)]
    probes = [
        _probe(kind, name, c.sub(f"{kind}Probe"), ports)
        for kind in ("startup", "readiness", "liveness")
        if f"{kind}Probe" in c.data
    ]
    pre_stop = None
    if "lifecycle" in c.data:
        life = c.sub("lifecycle")
        if "preStop" in life.data:
            pre_stop = _hook(life.sub("preStop"), ports)
    return Container(
        name=name, image=image, create_args=[*args, image, *cmd_args], command=command,
        args=cmd_args, env=env, ports=ports,
        probes=probes, pre_stop=pre_stop,
    )  # fmt: skip


def iter_mounts(container: Container) -> Iterator[tuple[str, str, bool]]:
    """(host source, container destination, read-only) of each bind mount in the arguments."""
    for flag, value in zip(container.create_args, container.create_args[1:], strict=False):
        if flag == "--mount":
            parts = dict(p.split("=", 1) for p in value.split(","))
            yield parts["source"], parts["destination"], parts.get("ro") == "true"
