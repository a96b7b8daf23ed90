"""Dashboards and alerts for the predictor, generated from code and shipped by the chart."""

from pathlib import Path

CHART_DIR = Path(__file__).resolve().parent.parent / "charts" / "sentiment"
