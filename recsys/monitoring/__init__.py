"""recsys.monitoring: what the running system reports about itself.

`metrics` holds the Prometheus metric definitions of the online service (per-stage latency, candidates per
stage, fallbacks, errors, model version info, reloads, feedback); the BentoML service creates them once per
worker process and the Grafana dashboard in deploy/grafana/ reads them. Framework-free: no BentoML here.
"""
