"""What the `autocrop` command says: what it did, where the files went, a count at the end,
lines never glued to the progress bar, no LiteRT banner, sizes as reduced ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data

from autocrop.cli import main
from tests.engine.test_decode import encode_image


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two good photos, an empty .jpg and a text file in one folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes(encode_image(skimage.data.astronaut(), "JPEG"))
    (folder / "coffee.png").write_bytes(encode_image(skimage.data.coffee(), "PNG", 6))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    return folder


def run_cli(*args: str, cwd: Path) -> str:
    """The command's stdout and stderr as one terminal shows them (one stream, in order)."""
    done = subprocess.run([sys.executable, "-m", "autocrop.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
    return done.stdout


def test_without_output_folder_it_says_nothing_was_written(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["crop", str(photos / "astronaut.jpg"), "--ratio", "1:1"]) == 0
    captured = capsys.readouterr()
    assert "astronaut.jpg: 1:1 [" in captured.out
    assert "1 done, 0 failed, 0 skipped" in captured.err
    assert "no crop files written" in captured.err and "add -o DIR" in captured.err
    assert list(work.iterdir()) == [] and sorted(p.name for p in photos.iterdir()) == [
        "astronaut.jpg", "coffee.png", "empty.jpg", "notes.txt"]  # fmt: skip


def test_a_batch_says_where_each_file_went_and_counts_done_failed_skipped(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["crop", str(photos), "--ratio", "16:9", "-o", str(out)]) == 1
    captured = capsys.readouterr()
    for stem in ("astronaut", "coffee"):
        written = out / f"{stem}_16x9.jpg"
        assert written.is_file() and f"-> {written}" in captured.out
    assert f"failed {photos / 'empty.jpg'}: " in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("autocrop: 2 done, 1 failed (each with its reason above), 1 skipped (not images by name: "
                           "notes.txt")  # fmt: skip
    assert last.endswith(f"crops written to {out}/")


def test_size_prints_a_reduced_ratio_and_says_when_a_crop_was_enlarged(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """astronaut.jpg is 512 x 512: its 4:5 crop is at most 410 x 512, so 1080x1350 enlarges it."""
    out = tmp_path / "out"
    assert main(["crop", str(photos / "astronaut.jpg"), "--size", "1080x1350", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{photos / 'astronaut.jpg'}: 4:5 [")
    assert re.search(r"\(1080x1350, enlarged from \d+x\d+: --no-upscale keeps the photo's pixels\)$", line), line
    assert main(["crop", str(photos / "astronaut.jpg"), "--size", "1080x1350", "-o", str(out), "--no-upscale"]) == 0
    line = capsys.readouterr().out.strip()
    assert "enlarged" not in line and re.search(r"\(\d+x\d+\)$", line), line


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_no_line_is_glued_to_the_progress_bar_and_no_litert_banner(photos: Path, tmp_path: Path, jobs: str) -> None:
    """The bar redraws with '\\r': every message must start a segment of its own, on the one
    stream a terminal shows."""
    shown = run_cli("crop", str(photos), "--ratio", "1:1", "-o", str(tmp_path / "out"), "--jobs", jobs, cwd=tmp_path)
    segments = re.split(r"[\r\n]", shown)
    assert any("img/s]" in s for s in segments), shown  # the bar was drawn
    messages = [s for s in segments if "autocrop: " in s or ": 1:1 [" in s]
    assert len(messages) == 4, shown  # two photos, one failure, the count
    for segment in messages:
        assert segment.startswith(("autocrop: ", str(photos))), repr(segment)
    assert "XNNPACK" not in shown and "INFO:" not in shown


def test_one_photo_prints_no_litert_banner(photos: Path, tmp_path: Path) -> None:
    shown = run_cli("crop", str(photos / "coffee.png"), "--ratio", "1:1", cwd=tmp_path)
    assert "XNNPACK" not in shown and "INFO:" not in shown
    assert "coffee.png: 1:1 [" in shown


def test_the_banner_filter_passes_every_other_native_line() -> None:
    """What else is written to descriptor 2 while an interpreter is built (an error, a
    warning) still reaches the terminal, in order."""
    code = (
        "import os\n"
        "from autocrop.litert import litert_banner_filtered\n"
        "with litert_banner_filtered():\n"
        "    os.write(2, b'ERROR: first\\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n"
        "WARNING: second\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "ERROR: first\nWARNING: second\nafter\n"
