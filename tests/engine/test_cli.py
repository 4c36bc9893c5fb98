"""The `autocrop` command line: crop and saliency subcommands, batches, errors, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from autocrop.cli import main
from autocrop.options import parse_ratio
from tests.engine.test_decode import encode_image, quadrants


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with two good photos (one in a subfolder, one EXIF-rotated) and a bad file."""
    folder = tmp_path / "in"
    (folder / "more").mkdir(parents=True)
    (folder / "astronaut.jpg").write_bytes(encode_image(skimage.data.astronaut(), "JPEG"))
    (folder / "more" / "coffee.png").write_bytes(encode_image(skimage.data.coffee(), "PNG", 6))
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_crop_a_folder_with_a_bad_file(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["crop", str(photos), "--ratio", "16:9", "--ratio", "4:5", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 1, "a bad file makes the exit status say so"
    lines = json_lines(captured.out)
    assert [Path(line["image"]).name for line in lines] == ["astronaut.jpg", "broken.jpg", "coffee.png"]
    bad = lines[1]
    assert "UnsupportedImageError" in bad["error"]
    assert "broken.jpg" in captured.err
    for line in (lines[0], lines[2]):
        assert set(line) >= {"image", "width", "height", "crops", "faces"}
        assert [c["ratio"] for c in line["crops"]] == ["16:9", "4:5"]
        for crop in line["crops"]:
            written = Image.open(crop["file"])
            assert written.size == tuple(crop["box"][2:])
            assert abs(written.size[0] / written.size[1] - parse_ratio(crop["ratio"])) < 0.01
    assert (lines[2]["width"], lines[2]["height"]) == (600, 400), "upright: stored 400 x 600 under EXIF 6"
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut_16x9.jpg", "astronaut_4x5.jpg", "coffee_16x9.jpg", "coffee_4x5.jpg",
    ]  # fmt: skip


def test_all_good_files_exit_zero_and_print_a_summary(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["crop", str(photos / "astronaut.jpg"), str(photos / "more")])
    out = capsys.readouterr().out
    assert code == 0
    assert "astronaut.jpg: 1:1 [" in out and "9:16 [" in out and "coffee.png" in out


def test_size_sets_the_ratio_and_the_output_size(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sized"
    code = main(["crop", str(photos / "astronaut.jpg"), "--size", "1080x1350", "-o", str(out),
                 "--format", "webp", "--quality", "80", "--json"])  # fmt: skip
    assert code == 0
    line = json_lines(capsys.readouterr().out)[0]
    assert line["crops"][0]["ratio"] == "4:5", "in lowest terms"
    written = Image.open(line["crops"][0]["file"])
    assert written.format == "WEBP" and written.size == (1080, 1350)


def test_a_size_larger_than_the_crop_says_upscaled_or_keeps_the_resolution(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """astronaut.jpg is 512 x 512: 1024x1024 enlarges it (and says so) unless --no-upscale."""
    for flags, size, upscaled in (([], (1024, 1024), True), (["--no-upscale"], (512, 512), False)):
        out = tmp_path / f"up{len(flags)}"
        code = main(["crop", str(photos / "astronaut.jpg"), "--size", "1024x1024", "-o", str(out), "--json", *flags])
        assert code == 0
        crop = json_lines(capsys.readouterr().out)[0]["crops"][0]
        assert crop["upscaled"] is upscaled and crop["size"] == list(size)
        assert Image.open(crop["file"]).size == size


@pytest.mark.parametrize(
    "args",
    [
        ["--ratio", "16:0"],
        ["--ratio", "wide"],
        ["--size", "100x0"],
        ["--size", "1080x1350", "--ratio", "16:9"],
        ["--format", "bmp"],
        ["--quality", "0"],
        ["--focal-point", "0.5"],
    ],
)
def test_bad_options_exit_two(photos: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crop", str(photos / "astronaut.jpg"), *args]) == 2
    assert "autocrop:" in capsys.readouterr().err


def test_no_images_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crop", str(tmp_path)]) == 2
    assert main(["crop"]) == 2


def test_debug_views_are_written(photos: Path, tmp_path: Path) -> None:
    debug = tmp_path / "debug"
    assert main(["crop", str(photos / "astronaut.jpg"), "--debug", str(debug)]) == 0
    assert Image.open(debug / "astronaut_debug.png").format == "PNG"


def test_same_stem_in_two_folders_does_not_overwrite(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "photo.png").write_bytes(encode_image(quadrants(), "PNG"))
    out = tmp_path / "out"
    assert main(["crop", str(tmp_path / "a"), str(tmp_path / "b"), "--ratio", "1:1", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo-2_1x1.jpg", "photo_1x1.jpg"]


def test_jobs_give_the_same_results(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["crop", str(photos), "--json"])
    serial = json_lines(capsys.readouterr().out)
    main(["crop", str(photos), "--json", "--jobs", "2"])
    parallel = json_lines(capsys.readouterr().out)
    strip = [{k: v for k, v in line.items() if k != "timings"} for line in serial]
    assert [{k: v for k, v in line.items() if k != "timings"} for line in parallel] == strip


def test_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crop", "--samples", "--ratio", "1:1", "--json"]) == 0
    names = [Path(line["image"]).name for line in json_lines(capsys.readouterr().out)]
    assert "astronaut.png" in names and "grace_hopper.jpg" in names


def test_saliency_maps_are_upright_photo_size(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "maps"
    code = main(["saliency", str(photos), "--out", str(out)])
    assert code == 1  # the broken file
    coffee = Image.open(out / "coffee.png")
    assert coffee.mode == "L" and coffee.size == (600, 400), "upright size of the EXIF-rotated photo"
    astronaut = np.asarray(Image.open(out / "astronaut.png"))
    assert astronaut.shape == (512, 512) and astronaut.max() == 255


def test_console_script() -> None:
    exe = Path(sys.executable).with_name("autocrop")
    cmd = [str(exe)] if exe.exists() else [shutil.which("autocrop") or "autocrop"]
    done = subprocess.run([*cmd, "crop", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--ratio" in done.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_progress_bar_carries_no_litert_banner(photos: Path, jobs: str) -> None:
    """LiteRT's C++ "Created TensorFlow Lite XNNPACK delegate" line (process stderr, not Python
    logging) is kept out of a batch's progress bar; the bad file's report still gets through."""
    done = subprocess.run([sys.executable, "-m", "autocrop.cli", "crop", str(photos), "--jobs", jobs],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1, done.stderr  # broken.jpg
    assert "XNNPACK" not in done.stderr
    assert "failed" in done.stderr and "broken.jpg" in done.stderr
    assert "crop: 100%" in done.stderr.replace("\r", "\n")  # the bar itself is there


@pytest.mark.parametrize("command", ["url", "backfill", "override"])
def test_the_commands_that_call_aws_point_to_infra_cli(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """They left the engine: one line naming the new command, exit 2, whatever the arguments."""
    assert main([command, "KEY", "--ratio", "1:1", "--help"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and f"python -m infra.cli {command}" in captured.err


def test_the_engine_cli_imports_nothing_outside_the_engine() -> None:
    """`autocrop`, its help and a moved command's pointer load no module of infra/, functions/
    or training/ (the engine ships alone in the Lambda layer)."""
    probe = ("import sys; from autocrop.cli import main, build_parser; build_parser().format_help(); main(['backfill']); "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'infra', 'functions', 'training', 'research'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
