"""The deploy tests reuse the chart fixtures (helm from .tools, the shared CRD schemas)."""

from tests.charts.conftest import helm_bin, shared_crds

__all__ = ["helm_bin", "shared_crds"]
