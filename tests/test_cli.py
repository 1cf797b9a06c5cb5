"""The command line end to end on the phantom (and the real volumes when present)."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from claim.cli import main
from tests.conftest import EMIDEC_SLICES, EMIDEC_VOLUMES


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("info", "phantom", "aha", "demo"):
        assert command in out


def test_ctrl_c_while_the_command_line_loads_is_one_line(monkeypatch, capsys):
    from claim import console

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "claim.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert console.main(["--version"]) == 130
    assert capsys.readouterr().err == "claim: interrupted\n"


def _default_ctrl_c() -> None:
    # A shell that runs the suite in the background starts it with SIGINT ignored, which a child would inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_at_any_moment_of_a_real_start_is_one_line_and_no_traceback(tmp_path):
    # Loading torch and every command takes seconds: a Ctrl-C then printed the import's traceback. Interrupts at
    # two moments land while it loads and, on a fast machine, once the demo runs; either way one line, exit status 130.
    for delay in (1.5, 5.0):
        process = subprocess.Popen([sys.executable, "-m", "claim", "demo", "--out", str(tmp_path / f"d{delay}")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True, preexec_fn=_default_ctrl_c)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        _, err = process.communicate(timeout=120)
        lines = [line for line in err.replace("\r", "\n").splitlines() if "interrupted" in line]
        # 130, or death by SIGINT (a shell reports 130 for both): an interrupt while the command loads was seen to
        # end that way after its one line, though the interrupt was caught (CPython's exit after an interrupt).
        assert process.returncode in (130, -signal.SIGINT) and "Traceback" not in err, (delay, err[-2000:])
        assert lines in (["claim: interrupted"], ["claim demo: interrupted"]), (delay, err[-2000:])


_DROPPED_INTERRUPT = """
import os, signal, sys, time
from claim import interrupts
if sys.argv[1] == "install":
    interrupts.install()
class Collected:
    def __del__(self):  # Ctrl-C arrives while a garbage-collection callback runs: Python drops it there
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
start = time.time()
try:
    Collected()
    while time.time() - start < 5:
        sum(range(1000))
    print("ran on")
except KeyboardInterrupt:
    interrupts.handled()
    print(f"interrupted after {time.time() - start:.2f} s")
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers on this system")
@pytest.mark.parametrize("install", [True, False])
def test_an_interrupt_dropped_in_a_collection_callback_is_raised_again(install):
    # Measured on claim demo: a Ctrl-C 7 s in was dropped in a weakref callback and the demo ran to its end.
    done = subprocess.run([sys.executable, "-c", _DROPPED_INTERRUPT, "install" if install else "plain"],
                          capture_output=True, text=True, timeout=60, preexec_fn=_default_ctrl_c)
    if install:
        # Raised again 0.01 s after it was dropped, well before the 1 s repeat; without this, never.
        assert done.stdout.startswith("interrupted after ") and float(done.stdout.split()[2]) < 0.9, done
        assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    else:  # Python's own handler: the interrupt is lost, with a traceback printed
        assert done.stdout.startswith("ran on") and "Exception ignored" in done.stderr


def test_unknown_option_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["phantom", "--out", "x", "--patiens", "3"])
    assert exc.value.code == 2


def test_phantom_is_deterministic_per_seed(tmp_path):
    assert main(["phantom", "--out", str(tmp_path / "a"), "--patients", "3", "--seed", "4"]) == 0
    assert main(["phantom", "--out", str(tmp_path / "b"), "--patients", "3", "--seed", "4"]) == 0
    assert main(["phantom", "--out", str(tmp_path / "c"), "--patients", "3", "--seed", "5"]) == 0
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a != c
    assert len([name for name in a if name.endswith(".nii.gz")]) == 6  # Images + Contours per patient


def test_info_and_aha_on_phantom(tmp_path, capsys):
    data = tmp_path / "phantom"
    main(["phantom", "--out", str(data), "--patients", "3", "--seed", "1", "--pathological-fraction", "1.0"])
    capsys.readouterr()
    assert main(["info", "--data", str(data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "emidec" and info["patients"] == 3 and info["pathological"] == 3
    assert all(0 < r["scar_burden"] < 0.6 for r in info["records"])
    out = tmp_path / "aha"
    assert main(["aha", "--data", str(data), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for record in summary["patients"]:
        pid = record["patient_id"]
        assert (out / pid / "Segments" / f"{pid}.nii.gz").exists()
        assert (out / "bullseye" / f"{pid}.png").exists()
        assert record["orientation"]["method"] == "image"
        assert record["apex_side"] in ("first", "last")
        assert (
            set(record["myocardium_pixels"]) == {str(k) for k in range(1, 18)} or len(record["myocardium_pixels"]) == 17
        )
        assert sum(record["scar_pixels"].values()) > 0


def test_aha_with_given_angle_records_method(tmp_path):
    data = tmp_path / "phantom"
    main(["phantom", "--out", str(data), "--patients", "1", "--seed", "2"])
    out = tmp_path / "aha"
    assert main(["aha", "--data", str(data), "--out", str(out), "--orientation", "angle:45", "--no-bullseye"]) == 0
    record = json.loads((out / "summary.json").read_text())["patients"][0]
    assert record["orientation"]["method"] == "angle"
    assert record["orientation"]["insertion_screen_deg"] == 45.0
    assert not (out / "bullseye").exists()


def test_bad_orientation_is_a_one_line_error(tmp_path, capsys):
    code = main(["aha", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--orientation", "north"])
    assert code == 2
    assert "expected auto, rv, image, angle:DEG or file:PATH" in capsys.readouterr().err


@pytest.mark.slow  # the whole chain: phantom -> study -> report
def test_demo_writes_report_and_metrics(tmp_path):
    # The whole chain (phantom -> AHA -> split -> SMILE -> generators -> joint -> four arms -> report) with toy
    # models on a small phantom; `make demo` runs the same chain with the quick preset.
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--patients", "6", "--seed", "0", "--preset", "smoke",
                 "--threads", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["aha"]["agreement_known_orientation_mean"] >= 0.9
    assert metrics["aha"]["apex_side_correct"] == 6
    assert metrics["preset"] == "smoke" and metrics["seed"] == 0
    assert set(metrics["arms"]) == {"real_only", "lefusion", "smile", "claim"}
    for entry in metrics["arms"].values():
        for key in ("infarct_dice", "myocardium_dice", "mvo_dice"):
            assert 0.0 <= entry[key] <= 1.0
        assert entry["infarct_volume_ratio_error"] >= 0.0
        assert entry["per_patient"]
    assert set(metrics["fidelity"]) == {"lefusion", "smile", "claim"}
    assert all(0.0 <= value <= 1.0 for value in metrics["fidelity"].values())
    assert metrics["timing"]["peak_rss_mb"] > 0 and metrics["timing"]["total_s"] > 0
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 6
    assert "real only" in html and "AHA 17-segment geometry" in html


@pytest.mark.realdata
def test_info_on_real_data(capsys):
    assert main(["info", "--data", str(EMIDEC_VOLUMES), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by_id = {r["patient_id"]: r for r in info["records"]}
    assert by_id["samplePositive"]["spacing_mm"] == pytest.approx([1.40625, 1.40625])
    assert by_id["samplePositive"]["label_pixels"]["mvo"] == 29
    assert main(["info", "--data", str(EMIDEC_SLICES), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["patients"] == 75 and info["slices"] == 530 and info["pathological"] == 50
