"""Scoring: the MLflow scoring protocol, the online endpoint and its micro-batcher."""
