"""Real processes on free loopback ports, for the tests and the benchmark alike.

One launcher so start-up, readiness and shutdown behave the same wherever a
server is needed: `process` (free ports, polling, one child process with a log
file), `servers` (the predictor and redis-server on top of it), `redis_deployments`
(Sentinel and Redis Cluster built from those), `scrape` (a server's /metrics
samples), `podspec` (a rendered predictor pod as podman arguments, with KServe's
storage additions and every unhonoured field listed) and `kubelet` (that pod run
under podman with its probes, restarts, preStop and grace period). Nothing here
imports the predictor package, the benchmark (loadtest/) or the tests.
"""
