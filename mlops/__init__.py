"""MLOps around the served model: drift checks, retraining, gated canary promotion.

Offline tools run by an operator or a CI job; the predictor never imports this package.
"""
