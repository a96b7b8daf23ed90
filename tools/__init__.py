"""Command-line clients of a running predictor (not shipped in the serving image)."""
