"""``nexus data``: synthesize, import, export, validate and describe datasets.

Example:
    $ nexus data synth data/shapes --images 360 --seed 0
    $ nexus data import exports/cvat data/parts --format cvat-yolo
    $ nexus data validate data/parts --json
    $ nexus data stats data/parts --plot stats.png
    $ nexus data export-coco data/parts val.json --split val
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nexus.errors import ValidationFailed

app = typer.Typer(help="Datasets: synth, import, export-coco, validate, stats.", no_args_is_help=True)

_FORMAT_HELP = "auto|coco|yolo|cvat-coco|cvat-yolo|labelstudio-coco|labelstudio-yolo"
_OVERWRITE_HELP = "Replace the dataset in a non-empty OUT (only images/, labels/, dataset.yaml)."


def _split_counts(dataset: Any) -> str:
    return ", ".join(f"{len(dataset.image_paths(split))} {split}" for split in dataset.splits)


@app.command("synth", help="Draw a deterministic synthetic shapes dataset (circles, rectangles, triangles).")
def synth_command(
    out: Annotated[Path, typer.Argument(help="Output folder (new or empty).")],
    images: Annotated[int, typer.Option("--images", help="Number of images (train + val).")] = 360,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Image side in pixels.")] = 160,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of images in val.", show_default="1/6")
    ] = 1 / 6,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
) -> None:
    from nexus.datasets import SynthConfig, synthesize_dataset

    config = SynthConfig(images=images, seed=seed, imgsz=imgsz, val_fraction=val_fraction)
    dataset = synthesize_dataset(out, config, overwrite=overwrite)
    typer.echo(f"wrote {config.images} images ({_split_counts(dataset)}) to {dataset.yaml_path}")


@app.command("import", help="Convert a COCO, YOLO, CVAT or Label Studio export into the YOLO layout.")
def import_command(
    source: Annotated[Path, typer.Argument(help="The export's folder (or its COCO JSON / data YAML).")],
    out: Annotated[Path, typer.Argument(help="Output folder (new or empty).")],
    format: Annotated[str, typer.Option("--format", help=_FORMAT_HELP)] = "auto",
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of images in val when the source has no split.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of that split.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
) -> None:
    from nexus.datasets import import_dataset

    dataset = import_dataset(
        source, out, format=format, val_fraction=val_fraction, seed=seed, overwrite=overwrite
    )
    names = ", ".join(dataset.names.values())
    typer.echo(
        f"imported {_split_counts(dataset)} images, {len(dataset.names)} classes ({names}), "
        f"task {dataset.task}, to {dataset.yaml_path}"
    )


@app.command("export-coco", help="Write a split's ground truth as a COCO JSON file.")
def export_coco_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder or its dataset.yaml.")],
    out_json: Annotated[Path, typer.Argument(help="The .json file to write.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "val",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    from nexus.datasets import YoloDataset, export_coco

    path = export_coco(YoloDataset.load(dataset), split, out_json, overwrite=overwrite)
    coco = json.loads(path.read_text(encoding="utf-8"))
    typer.echo(f"wrote {len(coco['images'])} images, {len(coco['annotations'])} annotations to {path}")


@app.command("validate", help="Check images and labels; exit 1 when there are errors (warnings pass).")
def validate_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder or its dataset.yaml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    from nexus.datasets import validate_dataset

    report = validate_dataset(dataset)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text())
    if not report.ok:
        raise ValidationFailed(f"{len(report.errors)} error(s) in {report.root}")


def _format_stats(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['root']} ({summary['task']}): {summary['images']} images, {summary['instances']} objects",
        f"{'split':<12}{'images':>8}{'objects':>9}{'background':>12}",
    ]
    for split, info in summary["splits"].items():
        lines.append(f"{split:<12}{info['images']:>8}{info['instances']:>9}{info['background_images']:>12}")
    lines.append(f"{'class':<20}{'instances':>10}{'images':>8}")
    for name, info in summary["classes"].items():
        lines.append(f"{name:<20}{info['instances']:>10}{info['images']:>8}")
    for key in ("width", "height"):
        d = summary["boxes"][key]
        if d["count"]:
            lines.append(
                f"box {key} (px): min {d['min']:g}, p50 {d['p50']:g}, p95 {d['p95']:g}, max {d['max']:g}"
            )
    per_image = summary["objects_per_image"]
    if per_image["count"]:
        lines.append(f"objects per image: mean {per_image['mean']:g}, max {per_image['max']:g}")
    sizes = ", ".join(f"{size} ({n})" for size, n in list(summary["image_sizes"].items())[:5])
    lines.append(f"image sizes: {sizes}")
    return "\n".join(lines)


@app.command("stats", help="Images and objects per split and class, box and image size distributions.")
def stats_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder or its dataset.yaml.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the histograms into this PNG.")
    ] = None,
) -> None:
    from nexus.datasets import YoloDataset, dataset_stats, write_stats_plot

    stats = dataset_stats(YoloDataset.load(dataset))
    summary = stats.to_dict()
    typer.echo(json.dumps(summary, indent=2) if as_json else _format_stats(summary))
    if plot is not None:
        write_stats_plot(stats, plot)
        if not as_json:
            typer.echo(f"wrote {plot}")
