"""Prefect tasks: thin wrappers over the nlpflow library (retries on I/O, artifacts)."""
