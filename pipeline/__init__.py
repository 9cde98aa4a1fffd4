"""Orchestration: CLI, scene.yaml, the Dask cluster and graph, the run directory, progress."""
