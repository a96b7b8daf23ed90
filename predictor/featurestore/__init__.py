"""Feature store: prediction cache, fetched tweets and per-user histories.

`FeatureStore` (store.py) wraps a `Backend` (backend.py; memory.py, redis.py,
chosen by registry.py from PREDICTOR_REDIS_URL) with a circuit breaker,
write-behind and metrics; `PredictionCache` (predictions.py) speaks in
predictions. Keys are derived only in keys.py.
"""
