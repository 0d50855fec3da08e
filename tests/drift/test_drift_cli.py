"""``nexus drift`` through ``nexus.cli.main.main``: exit codes, output and files."""

from __future__ import annotations

import json

import pytest

from nexus.cli.main import main


def test_no_drift_prints_a_summary_and_exits_0(drift_data, tmp_path, capsys):
    out = tmp_path / "report"
    args = [
        "drift",
        str(drift_data["reference"]),
        str(drift_data["same"]),
        "--out",
        str(out),
        "--no-embeddings",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("no drift: ") and "embeddings [pixels]: not tested" in printed
    assert "reference: 24 images" in printed and f"report: {out / 'drift_report.html'}" in printed
    assert (out / "drift_report.html").is_file() and (out / "drift_summary.json").is_file()


def test_drift_is_a_finding_not_an_error(drift_data, tmp_path, capsys):
    args = ["drift", str(drift_data["reference"]), str(drift_data["dark"]), "--out", str(tmp_path), "--json"]
    args += ["--split", "all", "--current-split", "train", "--no-embeddings"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["drifted"] is True and "brightness" in summary["drifted_columns"]
    assert (summary["reference_count"], summary["current_count"]) == (30, 24)
    assert summary["embedding_score"] is None
    assert json.loads((tmp_path / "drift_summary.json").read_text())["drifted"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "{same}"], "no such dataset or image folder"),
        (["{reference}", "{same}", "--split", "test"], "no split 'test'"),
        (["{reference}", "{same}", "--drift-share", "0"], "drift_share=0.0: set it above 0"),
        (["{reference}", "{same}", "--model", "{missing}.onnx"], "no such model file"),
    ],
)
def test_bad_input_exits_2_with_one_line(drift_data, tmp_path, capsys, args, message):
    paths = {"missing": tmp_path / "missing", **{k: str(v) for k, v in drift_data.items()}}
    argv = ["drift", *(arg.format(**paths) for arg in args), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
