"""The typer application: one module per command group, assembled here."""

from __future__ import annotations

import typer

from builder.cli import build, code_repository, entrypoint, run, runs, secret, status
from builder.cli.options import TYPER_OPTIONS

app = typer.Typer(
    name="builder",
    help="Reuse a cached base image when the code is on a registered git repository; "
    "bake a thin code layer when it is not.",
    # typer's completion: `builder --install-completion` (bash, zsh, fish, PowerShell).
    add_completion=True,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    **TYPER_OPTIONS,
)


def _show_version(value: bool) -> None:
    if value:
        import builder
        from builder.cli.output import emit

        emit(f"builder {builder.__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print builder's version and exit."),
) -> None:
    """Reuse a cached base image when the code is on a registered git repository; bake a thin
    code layer when it is not."""


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
