"""Container images of a model version: one image, two modes (`serve`, `score`).

`context.py` writes the build context (a Dockerfile a user can read and keep, the pinned
requirements installed once and cached, sparkserve's own code, the model folder);
`engine.py` talks to any Docker-API engine (Docker or Podman) and builds it; `__main__.py`
is the image's entrypoint.
"""
