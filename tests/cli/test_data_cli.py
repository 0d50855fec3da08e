"""``nexus data ...`` through ``nexus.cli.main.main``: exit codes, output and files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nexus.cli.main import main


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "shapes"
    assert main(["data", "synth", str(root), "--images", "6", "--seed", "2", "--imgsz", "48"]) == 0
    return root


@pytest.fixture
def damaged(dataset_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "damaged"
    shutil.copytree(dataset_dir, root)
    return root


def test_synth_writes_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    rc = main(
        ["data", "synth", str(out), "--images", "5", "--seed", "1", "--imgsz", "40", "--val-fraction", "0.4"]
    )
    assert rc == 0
    assert (
        capsys.readouterr().out.strip() == f"wrote 5 images (3 train, 2 val) to {out.resolve()}/dataset.yaml"
    )
    assert len(list((out / "images/val").glob("*.jpg"))) == 2


def test_synth_refuses_non_empty_output_unless_overwrite(dataset_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["data", "synth", str(out), "--images", "3", "--imgsz", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty; pass --overwrite" in err and err.count("\n") == 1
    assert main(["data", "synth", str(out), "--images", "3", "--imgsz", "32", "--overwrite"]) == 0
    assert (out / "mine.txt").read_text() == "keep"


def test_synth_bad_config(tmp_path: Path, capsys) -> None:
    assert main(["data", "synth", str(tmp_path / "x"), "--images", "1"]) == 2
    assert "set images to 2 or more" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_import_auto_and_format(dataset_dir: Path, tmp_path: Path, capsys) -> None:
    rc = main(["data", "import", str(dataset_dir), str(tmp_path / "a"), "--seed", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "imported 5 train, 1 val images, 3 classes (circle, rectangle, triangle), task segment" in out
    rc = main(
        ["data", "import", str(dataset_dir), str(tmp_path / "b"), "--format", "yolo", "--val-fraction", "0.5"]
    )
    assert rc == 0 and (tmp_path / "b" / "dataset.yaml").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "voc"], "unknown format 'voc'"),
        (["--val-fraction", "1.5"], "val fraction 1.5 must be above 0 and below 1"),
    ],
)
def test_import_bad_options(dataset_dir: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["data", "import", str(dataset_dir), str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_import_bad_label_names_file_and_line(damaged: Path, tmp_path: Path, capsys) -> None:
    label = sorted((damaged / "labels/train").glob("*.txt"))[0]
    label.write_text("0 0.5 0.5\n")
    assert main(["data", "import", str(damaged), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {label}: line 1: 3 fields; expected 5 (cls cx cy w h) or an odd number >= 7 " + (
        "(cls x1 y1 x2 y2 x3 y3 ...) in '0 0.5 0.5'\n"
    )
    assert not (tmp_path / "out").exists()


def test_import_corrupt_image(damaged: Path, tmp_path: Path, capsys) -> None:
    image = sorted((damaged / "images/val").glob("*.jpg"))[0]
    image.write_bytes(b"\xff\xd8 broken")
    assert main(["data", "import", str(damaged), str(tmp_path / "out")]) == 2
    assert f"error: {image}: corrupt or not an image" in capsys.readouterr().err


def test_export_coco(dataset_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gt" / "val.json"
    assert main(["data", "export-coco", str(dataset_dir), str(out)]) == 0
    coco = json.loads(out.read_text())
    assert capsys.readouterr().out.startswith(
        f"wrote 1 images, {len(coco['annotations'])} annotations to {out}"
    )
    assert main(["data", "export-coco", str(dataset_dir), str(out), "--split", "train"]) == 2
    assert "file exists; pass --overwrite" in capsys.readouterr().err
    assert main(["data", "export-coco", str(dataset_dir), str(out), "--split", "train", "--overwrite"]) == 0
    assert len(json.loads(out.read_text())["images"]) == 5
    assert main(["data", "export-coco", str(dataset_dir), str(out), "--split", "test", "--overwrite"]) == 2
    assert "no split 'test'" in capsys.readouterr().err


def test_validate_clean(dataset_dir: Path, capsys) -> None:
    assert main(["data", "validate", str(dataset_dir)]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    assert main(["data", "validate", str(dataset_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["images"] == {"train": 5, "val": 1}


def test_validate_warnings_only_exit_0(damaged: Path, capsys) -> None:
    sorted((damaged / "labels/train").glob("*.txt"))[0].unlink()
    assert main(["data", "validate", str(damaged)]) == 0
    out = capsys.readouterr().out
    assert "warning: images/train/shapes_00000.jpg: missing_label: " in out
    assert "OK: " in out and "0 error(s), 1 warning(s)" in out


def test_validate_errors_exit_1(damaged: Path, capsys) -> None:
    (damaged / "labels/train/shapes_00001.txt").write_text("0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n")
    assert main(["data", "validate", str(damaged), "--json"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False
    assert report["errors"] == [
        {
            "path": "labels/train/shapes_00001.txt",
            "kind": "unknown_class",
            "message": "class 5 is not in names (0..2)",
            "line": 2,
        }
    ]
    assert captured.err.startswith("error: 1 error(s) in ")
    assert main(["data", "validate", str(damaged)]) == 1
    assert "error: labels/train/shapes_00001.txt:2: unknown_class:" in capsys.readouterr().out


def test_stats_text_json_and_plot(dataset_dir: Path, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "stats.png"
    assert main(["data", "stats", str(dataset_dir), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "circle" in out and "image sizes: 48x48 (6)" in out and f"wrote {plot}" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["data", "stats", str(dataset_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 6 and set(summary["splits"]) == {"train", "val"}


@pytest.mark.parametrize("command", ["validate", "stats", "export-coco"])
def test_missing_or_non_dataset_folder(tmp_path: Path, capsys, command: str) -> None:
    extra = [str(tmp_path / "o.json")] if command == "export-coco" else []
    assert main(["data", command, str(tmp_path / "missing"), *extra]) == 2
    assert "no such dataset folder or file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", command, str(tmp_path / "empty"), *extra]) == 2
    assert "no dataset.yaml in this folder" in capsys.readouterr().err


def test_help_lists_commands(capsys) -> None:
    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("synth", "import", "export-coco", "validate", "stats"):
        assert command in out
