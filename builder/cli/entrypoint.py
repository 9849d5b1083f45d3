"""`builder entrypoint [-- CMD ...]` for --help; the work is builder.container.entrypoint."""

from __future__ import annotations

import typer


def entrypoint(
    command: list[str] = typer.Argument(None, help="The command to run (after --)."),
) -> None:
    """Inside the container: fetch the code at BUILDER_COMMIT (cached), then exec CMD in it.

    Reads only the container contract's environment: BUILDER_CODE_DIR, BUILDER_COMMIT,
    BUILDER_CODE_REPOSITORY, BUILDER_SUBDIRECTORY, BUILDER_TOKEN_FILE (or BUILDER_TOKEN),
    BUILDER_CACHE_DIR, BUILDER_VERIFY_DOWNLOAD. Without BUILDER_COMMIT the code is already
    in the image (bake mode) and CMD runs in the code dir.
    """
    from builder.container.entrypoint import run

    run(list(command or []))
