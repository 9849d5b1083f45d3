"""The project's own declarations: where its dependencies come from and what they resolve
to (`sources`, `resolve`, with `uvlock`, `poetrylock`, `declared`), and the project itself,
installed from its source without a build backend (`metadata`, `install`).

README "Project formats" describes what is detected, what builder.yaml can override, and
the layouts supported.
"""
