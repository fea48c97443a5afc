"""Prefect flows: thin orchestration over models/, warehouse/, ingestion/ and the lake (see deployments.py)."""
