"""Images: base-image checksum, Dockerfile templates, build contexts, the docker-py engine.

Nothing here imports docker at module import time except `engine` when an engine is used,
so `builder status` never loads docker-py.
"""
