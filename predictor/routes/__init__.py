"""The predictor's own REST routes beside KServe's, each behind its credential."""
