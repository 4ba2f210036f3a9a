"""Prefect flows: compose tasks from `tasks/`, nothing else."""
