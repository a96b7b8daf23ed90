"""Feature store: prediction cache, fetched tweets and per-user histories.

`FeatureStore` (store.py) wraps a `Backend` (backend.py; memory.py, redis.py,
chosen by registry.py from PREDICTOR_REDIS_URL, whose schemes redis_url.py
parses) with a circuit breaker, write-behind and metrics. Each data family has
one owner: `PredictionCache` (predictions.py) for predictions, `UserHistory`
(history.py) for per-user histories, the tweet resolver (predictor/sources)
for fetched tweets. Keys are derived only in keys.py; lru.py is the one
in-process LRU.
"""
