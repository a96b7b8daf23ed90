"""skaffold.yaml against the real v4beta14 schema; every profile deploys a chart that renders."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from tests.charts import chart_tools as ct

SKAFFOLD = ct.REPO / "skaffold.yaml"
SCHEMA = ct.CRDS / "skaffold-v4beta14.schema.json"
PROFILES = {"cpu", "gpu", "knative", "standard", "dev"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(SKAFFOLD.read_text())


def test_validates_against_the_schema(config: dict[str, Any]) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"{SCHEMA} is absent (the shared folder beside the repository; CI has it)")
    schema = json.loads(SCHEMA.read_text())
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(config)]
    assert errors == []
    assert config["apiVersion"] == "skaffold/v4beta14"
    broken = copy.deepcopy(config)
    broken["deploy"]["helm"]["releases"][0]["chartpath"] = "typo"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken)), "schema check is inert"


def test_profiles_are_the_named_ones_each_with_a_comment(config: dict[str, Any]) -> None:
    assert {p["name"] for p in config["profiles"]} == PROFILES
    text = SKAFFOLD.read_text()
    for name in PROFILES:
        assert re.search(rf"\n  # {name}: \S.*\n(  #.*\n)*  - name: {name}\n", text), name


def test_helm_gets_repo_tag_and_digest_from_the_build(config: dict[str, Any]) -> None:
    image = config["build"]["artifacts"][0]["image"]
    key = re.sub(r"[^A-Za-z0-9]", "_", image)
    templates = config["deploy"]["helm"]["releases"][0]["setValueTemplates"]
    assert templates == {
        "image.repository": f"{{{{.IMAGE_REPO_{key}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{key}}}}}",
        "image.digest": f"{{{{.IMAGE_DIGEST_{key}}}}}",
    }
    assert config["build"]["artifacts"][0]["docker"]["target"] == "runtime"


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_patches(config: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The add/replace subset of JSON Patch that skaffold profiles use here; a replace of a missing
    key fails, as it does in skaffold."""
    out = copy.deepcopy(config)
    for patch in patches:
        *parents, last = _pointer(patch["path"])
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if patch["op"] == "replace" and last not in node:
            raise KeyError(f"replace of missing {patch['path']}")
        assert patch["op"] in {"add", "replace"}, patch["op"]
        node[last] = patch["value"]
    return out


@pytest.mark.usefixtures("helm_bin")
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_renders_the_chart(config: dict[str, Any], profile: str) -> None:
    """What skaffold would pass to helm for this profile renders, with a digest as the build
    would give (empty in dev, where the image is not pushed)."""
    spec = next(p for p in config["profiles"] if p["name"] == profile)
    patched = apply_patches(config, spec.get("patches", []))
    release = patched["deploy"]["helm"]["releases"][0]
    digest = "sha256:" + "0" * 64
    built = {"IMAGE_REPO_": "registry.local/predictor", "IMAGE_TAG_": "abc1234",
             "IMAGE_DIGEST_": digest}  # fmt: skip
    sets = []
    for key, template in release["setValueTemplates"].items():
        value = template
        for prefix, fake in built.items():
            value = re.sub(r"\{\{\." + prefix + r"\w+\}\}", fake, value)
        sets.append(f"{key}={value}")
    for key, value in release["setValues"].items():
        sets.append(f"{key}={json.dumps(value) if isinstance(value, bool) else value}")
    files = [ct.REPO / f for f in release.get("valuesFiles", [])]
    docs = ct.render(files, sets)
    main = ct.container(ct.one(docs, "InferenceService")["spec"]["predictor"], "kserve-container")
    want = "registry.local/predictor" + (f"@{digest}" if profile != "dev" else ":abc1234")
    assert main["image"] == want
    annotations = ct.one(docs, "InferenceService")["metadata"]["annotations"]
    want_mode = "Standard" if profile == "standard" else "Knative"
    assert annotations["serving.kserve.io/deploymentMode"] == want_mode
    if profile == "gpu":
        assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
        args = patched["build"]["artifacts"][0]["docker"]["buildArgs"]
        assert args["TORCH_VARIANT"].startswith("cu")
        assert args["TORCH_INDEX"].endswith("/" + args["TORCH_VARIANT"])
    else:
        assert "nvidia.com/gpu" not in main["resources"]["limits"]
