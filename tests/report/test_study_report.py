from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from claim.report.study import training_curves_figure, write_study_report

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def test_report_holds_arms_table_and_embedded_images(smoke_study):
    _, out, metrics = smoke_study
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    for text in ("real only", "LeFusion", "SMILE", "joint training", "95 % CI", "Mask fidelity", "Budget split",
                 "Training curves", "Per patient"):
        assert text in html
    assert html.count("data:image/png;base64,") >= 5
    assert "src=\"http" not in html and "src='http" not in html  # self-contained
    # Rewriting from the same metrics gives the same report.
    again = write_study_report(out, metrics, out / "again.html")
    assert again.read_text() == html


def test_training_curves_handle_nested_logs(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4, "val": {"infarct_dice": 0.3}}\n')
    png = training_curves_figure({"run": log, "missing": tmp_path / "none.jsonl"})
    assert png is not None and png.startswith(b"\x89PNG")
    assert training_curves_figure({"missing": tmp_path / "none.jsonl"}) is None


@pytest.mark.skipif(_chromium() is None, reason="Chromium not installed (/usr/bin/chromium or chromium on PATH)")
def test_report_renders_in_headless_chromium(smoke_study, tmp_path):
    _, out, _ = smoke_study
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1200,2000",
         (out / "report.html").resolve().as_uri()],
        check=True, timeout=120, capture_output=True,
    )
    assert screenshot.stat().st_size > 20_000
    pixels = np.asarray(Image.open(screenshot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1200)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and figures, not one colour
    assert pixels.std() > 10
