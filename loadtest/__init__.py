"""Load generator (`python -m loadtest`) and benchmark (`make bench`) for the predictor."""
