"""The Jupyter server extension: the REST face of the core."""
