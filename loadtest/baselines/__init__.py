"""What the predictor is measured against: the usual per-request KServe model, and a no-op."""
