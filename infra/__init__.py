"""Deployment artifacts: `infra/resources.json` (tables, streams, queues) and `python -m infra.package`."""
