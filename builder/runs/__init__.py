"""Run records: what every `builder run` and `builder build` ran, kept in SQLite.

`records` is the record itself (plain data), `database` the store in `$BUILDER_HOME/runs/`,
`recording` the hook a command wraps itself in, `ci` the CI context, `rerun` the exact
re-run of a recorded run. Nothing here is imported on the `builder status` path.
"""
