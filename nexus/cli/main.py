"""Entry point of the ``nexus`` program; turns user errors into one line and a non-zero exit."""

from __future__ import annotations

import sys

import click
import typer

from nexus.errors import NexusError

app = typer.Typer(
    name="nexus",
    help="NexusAI Platform: datasets, training, export, inference and evaluation for computer vision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from nexus.cli import data, evaluate, export, predict, train

    app.add_typer(data.app, name="data")
    app.add_typer(evaluate.app, name="eval")
    app.command("train")(train.train_command)
    app.command("export")(export.export_command)
    app.command("predict")(predict.predict_command)


def main(argv: list[str] | None = None) -> int:
    """Run the program; returns the exit status instead of raising ``SystemExit``."""
    _register()
    try:
        result = app(args=argv, prog_name="nexus", standalone_mode=False)
    except NexusError as error:
        typer.echo(f"error: {error}", err=True)
        return error.exit_code
    except click.exceptions.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as error:
        return error.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
        typer.echo(f"error: {error.filename or ''}: {error.strerror or error}", err=True)
        return 2
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
