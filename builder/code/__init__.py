"""Code trees: the local checkout and its git questions, the shipped file set, the download
frame, safe archive extraction, incremental updates, .dockerignore matching, git object ids
and retries."""
