"""What runs at container start: the warm start (cached code, exec) and the entrypoint
(download into the cache, install into the code dir, exec)."""
