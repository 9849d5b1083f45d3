"""State: builder.yaml settings (and their cache), the store of repositories and secrets,
locks and atomic writes. The bottom layer: it imports nothing else of builder but errors."""
