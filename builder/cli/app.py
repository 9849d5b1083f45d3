"""The typer application: one module per command group, assembled here."""

from __future__ import annotations

import typer

from builder.cli import build, code_repository, entrypoint, run, runs, secret, status

app = typer.Typer(
    name="builder",
    help="Reuse a cached base image when the code is on a registered git repository; "
    "bake a thin code layer when it is not.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
app.add_typer(code_repository.app, name="code-repository")
app.add_typer(secret.app, name="secret")
app.add_typer(runs.app, name="runs")
app.command("status")(status.status)
app.command("build")(build.build)
app.command("run")(run.run)
app.command(
    "entrypoint",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(entrypoint.entrypoint)
