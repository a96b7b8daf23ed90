"""The tweet-sentiment KServe predictor (see README.md for the map of the package)."""

# The name the model is served under unless `--model_name` says otherwise: the one
# source for it (URLs, metrics labels, load generators and tests import it).
DEFAULT_MODEL_NAME = "sentiment"
