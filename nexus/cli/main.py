"""Entry point of the ``nexus`` program; turns user errors into one line and a non-zero exit."""

from __future__ import annotations

import sys

import typer

from nexus.errors import NexusError

app = typer.Typer(
    name="nexus",
    help="NexusAI Platform: datasets, training, export, inference and evaluation for computer vision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# An output folder that is an existing file, a missing input, a folder given for a file, no permission.
_PATH_ERRORS = (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _register() -> None:
    from nexus.cli import (
        api,
        batch,
        data,
        deploy,
        drift,
        evaluate,
        export,
        pipeline,
        predict,
        quickstart,
        registry,
        serve,
        track,
        train,
        tune,
        video,
    )

    app.add_typer(data.app, name="data")
    app.add_typer(evaluate.app, name="eval")
    app.add_typer(pipeline.app, name="pipeline")
    app.add_typer(video.app, name="video")
    app.add_typer(batch.app, name="batch")
    app.command("track")(track.track_command)
    app.command("train")(train.train_command)
    app.command("tune")(tune.tune_command)
    app.command("export")(export.export_command)
    app.command("drift")(drift.drift_command)
    app.command("predict")(predict.predict_command)
    app.command("quickstart")(quickstart.quickstart_command)
    app.command("api")(api.api_command)
    app.command("serve")(serve.serve_command)
    app.add_typer(deploy.app, name="deploy")
    app.add_typer(registry.app, name="registry")


def main(argv: list[str] | None = None) -> int:
    """Run the program; returns the exit status instead of raising ``SystemExit``."""
    _register()
    try:
        result = app(args=argv, prog_name="nexus", standalone_mode=False)
    except NexusError as error:
        typer.echo(f"error: {error}", err=True)
        return error.exit_code
    except typer.Exit as error:
        return error.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except typer.TyperException as error:  # typer's bundled click usage errors (missing/bad options)
        show = getattr(error, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"error: {error}", err=True)
        return int(getattr(error, "exit_code", 2))
    except _PATH_ERRORS as error:
        typer.echo(f"error: {error.filename or ''}: {error.strerror or error}", err=True)
        return 2
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
