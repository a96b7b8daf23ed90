"""The numbers the chart gives the predictor pod, rendered with the real helm binary."""

from __future__ import annotations

from dataclasses import dataclass

from tests.charts import chart_tools as ct

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}


def quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (`2Gi`, `512Mi`, `1G`) in bytes."""
    for suffix, factor in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


@dataclass(frozen=True)
class PodNumbers:
    memory_limit_bytes: int
    grace_period_s: int
    pre_stop_s: int
    env: dict[str, str]


def predictor_numbers(sets: list[str] | None = None) -> PodNumbers:
    ct.fetch_tools()
    docs = ct.render(sets=sets or [])
    pod = ct.one(docs, "InferenceService")["spec"]["predictor"]
    main = next(c for c in pod["containers"] if c["name"] == "kserve-container")
    pre_stop = main.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    env = {k: str(v) for k, v in ct.env_of(main).items() if isinstance(v, (str, int, float))}
    return PodNumbers(
        memory_limit_bytes=quantity_bytes(main["resources"]["limits"]["memory"]),
        grace_period_s=int(pod["terminationGracePeriodSeconds"]),
        pre_stop_s=int(pre_stop),
        env=env,
    )
