"""The bad-input corpus (tests/corpus.py) through every door: the engine, the API, the CLI.

Each upload ends as a correct crop or as a clear refusal (415 / 413 with a reason, an error
line and a non-zero exit for that file); never a crash, a 500 or an unbounded allocation.
The S3 door gets the same corpus in tests/doors/test_s3_faults.py, through the real local path.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autocrop import Box, CropOptions, analyse, parse_ratio, render_crop
from autocrop.cli import main as cli_main
from autocrop.errors import ImageTooLargeError, UnsupportedImageError
from fastapi.testclient import TestClient
from PIL import Image

from functions.api.app import app
from functions.settings import get_settings
from tests.corpus import Case, by_name, corpus, picture, write_corpus

ROOT = Path(__file__).resolve().parents[2]
RATIOS = ("1:1", "16:9", "4:5", "9:16")
OPTIONS = CropOptions.from_ratios(RATIOS)
ENGINE_ERRORS = {"unsupported_image": UnsupportedImageError, "image_too_large": ImageTooLargeError}
#: The ceiling for the worst case of the corpus, as peak RSS of a whole process.
PEAK_RSS_LIMIT_MB = 500

CASES = corpus()
IDS = [c.name for c in CASES]


def check_crop(case: Case, box: list[int], ratio: str, got: bytes | None = None) -> None:
    """A crop of `case` is inside the photo, as close to `ratio` as its pixels allow."""
    assert case.size is not None
    width, height = case.size
    x, y, w, h = box
    assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= width and y + h <= height
    # The largest window of the ratio that fits; integer pixels make tiny photos approximate.
    want = parse_ratio(ratio)
    fit_w, fit_h = (min(width, height * want), min(height, width / want))
    if min(fit_w, fit_h) >= 20:
        assert w / h == pytest.approx(want, rel=0.06), (case.name, ratio, box)
    if got is not None:
        image = Image.open(io.BytesIO(got))
        image.load()
        assert image.size == (w, h)


# --- the engine ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_engine_crops_or_refuses_clearly(case: Case):
    if case.refused:
        with pytest.raises(ENGINE_ERRORS[case.expect]) as raised:
            analyse(case.data, OPTIONS)
        assert str(raised.value)  # a reason, not an empty message
        return
    result = analyse(case.data, OPTIONS)
    assert (result.width, result.height) == case.size
    for crop in result.crops:
        check_crop(case, crop.box.to_list(), crop.ratio, render_crop(case.data, crop.box))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_crops_the_same_upright_subject(orientation: int):
    """The disc sits in the upright picture's upper right; every orientation finds it there."""
    upright = analyse(by_name("exif_orientation_1.jpg").data, OPTIONS)
    turned = analyse(by_name(f"exif_orientation_{orientation}.jpg").data, OPTIONS)
    for a, b in zip(upright.crops, turned.crops, strict=True):
        assert np.abs(np.subtract(a.box.to_list(), b.box.to_list())).max() <= 3, (a, b)
    # and the pixels written are upright: the crop's brightest spot is the disc
    square = turned.crop("1:1")
    got = np.asarray(Image.open(io.BytesIO(render_crop(by_name(
        f"exif_orientation_{orientation}.jpg").data, square.box))).convert("RGB"))  # fmt: skip
    expected = picture()[square.box.y : square.box.bottom, square.box.x : square.box.right]
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 12


def test_bombs_are_refused_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch):
    """The guard reads the header: decoding must never start for a bomb."""
    from PIL import ImageFile

    def no_decoding(self: Any) -> None:
        raise AssertionError(f"pixels of {self.size} were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for name in ("bomb_30000x30000.png", "huge_header_65000x65000.jpg",
                 "huge_header_60000x2000.jpg"):  # fmt: skip
        with pytest.raises(ImageTooLargeError):
            analyse(by_name(name).data, OPTIONS)
        with pytest.raises(ImageTooLargeError):
            render_crop(by_name(name).data, Box(0, 0, 10, 10))


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> TestClient:
    get_settings.cache_clear()
    return TestClient(app, raise_server_exceptions=False)  # a 500 must show as a 500


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_api_answers_crops_or_a_clear_4xx(client: TestClient, case: Case):
    raw = client.post(
        f"/v1/crop?ratios={','.join(RATIOS)}",
        content=case.data,
        headers={"content-type": case.content_type},
    )
    form = client.post(
        "/v1/crop",
        files={"image": (case.name, case.data, case.content_type)},
        data={"ratios": ",".join(RATIOS)},
    )
    for response in (raw, form):
        assert response.status_code == case.http_status, response.text
        body = response.json()
        if case.refused:
            assert body["error"] == case.expect
            assert isinstance(body["detail"], str) and len(body["detail"]) > 10
        else:
            assert [c["ratio"] for c in body["crops"]] == list(RATIOS)
            for crop in body["crops"]:
                check_crop(case, crop["box"], crop["ratio"])


@pytest.mark.parametrize("case", [c for c in CASES if c.data], ids=[c.name for c in CASES if c.data])
def test_api_image_output_and_debug_view(client: TestClient, case: Case):
    image = client.post("/v1/crop?ratio=4:5&output=image&format=png", content=case.data)
    debug = client.post("/v1/debug", content=case.data)
    for response in (image, debug):
        assert response.status_code == case.http_status, response.text
    if case.refused:
        assert image.json()["error"] == debug.json()["error"] == case.expect
        return
    box = [int(v) for v in image.headers["x-autocrop-box"].split(",")]
    check_crop(case, box, "4:5", image.content)
    assert Image.open(io.BytesIO(debug.content)).format == "PNG"


# --- the CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cli_exit_status_and_error_line_per_file(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    path = tmp_path / case.name
    path.write_bytes(case.data)
    status = cli_main(["crop", str(path), "--json", "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    line = json.loads(out.strip().splitlines()[-1])
    if case.refused:
        assert status == 1
        assert "error" in line and line["error"]
        assert case.name in err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    else:
        assert status == 0, err
        assert [c["ratio"] for c in line["crops"]] == list(RATIOS)
        for crop in line["crops"]:
            check_crop(case, crop["box"], crop["ratio"], Path(crop["file"]).read_bytes())


def test_cli_batch_over_the_whole_corpus_survives_every_file(tmp_path: Path):
    """One real process over a folder of every case: one line per file, exit 1 for the bad."""
    write_corpus(tmp_path / "in")
    done = subprocess.run(
        ["nice", "-n", "10", sys.executable, "-m", "autocrop.cli", "crop", str(tmp_path / "in"),
         "--json", "-o", str(tmp_path / "out"), "--ratio", "1:1", "--ratio", "9:16"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = {Path(j["image"]).name: j for j in map(json.loads, done.stdout.splitlines())}
    # every file the CLI picks up by extension gets exactly one line
    assert set(lines) == {c.name for c in CASES}
    for case in CASES:
        assert ("error" in lines[case.name]) == case.refused, (case.name, lines[case.name])
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 2 * sum(not c.refused for c in CASES)
    assert "Traceback" not in done.stderr


# --- memory: the worst cases, measured in a fresh process ------------------------------------------

PEAK_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from autocrop import Box, CropOptions, analyse, render_crop
    from autocrop.errors import AutocropError
    from tests.corpus import jpeg

    def peak_mb():
        # VmHWM is this address space's own peak; ru_maxrss would carry the parent's
        # (pytest's) peak over fork and exec and report that instead.
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    options = CropOptions.from_ratios("1:1,16:9,4:5,9:16")
    # The inputs arrive as files the parent wrote: generating them (PNG bombs, HEIC encodes)
    # is the harness's memory, not the engine's, and would otherwise count as a cost here.
    inputs = {Path(p).name: Path(p).read_bytes() for p in sys.argv[1:]}
    analyse(jpeg(), options)  # models loaded: the warm Lambda's baseline
    baseline = peak_mb()
    outcomes = {}
    for name, data in inputs.items():
        try:
            result = analyse(data, options)
            for crop in result.crops:
                render_crop(data, crop.box)
            outcomes[name] = "crop"
        except AutocropError as e:
            outcomes[name] = type(e).__name__
        try:  # the render path alone (the API's image output) must refuse as early
            render_crop(data, Box(0, 0, 16, 16))
        except AutocropError:
            pass
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak_mb(), "outcomes": outcomes}))
    """
)


def measure_peak(names: list[str], folder: Path) -> dict[str, Any]:
    paths = []
    for name in names:
        paths.append(folder / name)
        paths[-1].write_bytes(by_name(name).data)
    done = subprocess.run(
        ["nice", "-n", "10", sys.executable, "-c", PEAK_SCRIPT, *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_worst_cases_stay_under_500_mb_peak(tmp_path: Path):
    """The bombs and huge headers, then the largest real pictures of the corpus, in one
    process: its peak resident memory (models loaded) stays under the ceiling."""
    worst = ["bomb_30000x30000.png", "huge_header_65000x65000.jpg", "huge_header_60000x2000.jpg",
             "strip_20000x10.png", "strip_10x20000.png", "grey16.png", "cmyk.jpg",
             "damaged.heic", "damaged.avif"]  # fmt: skip
    measured = measure_peak(worst, tmp_path)
    print(f"\npeak RSS over the worst cases: {measured['peak_mb']:.0f} MB "
          f"(baseline with models loaded {measured['baseline_mb']:.0f} MB)")  # fmt: skip
    assert measured["outcomes"] == {
        name: "crop" if not by_name(name).refused else
        ("ImageTooLargeError" if by_name(name).expect == "image_too_large" else "UnsupportedImageError")
        for name in worst
    }  # fmt: skip
    assert measured["peak_mb"] < PEAK_RSS_LIMIT_MB
    # the bombs cost nothing beyond the baseline: refused from the header
    bombs = measure_peak(worst[:3], tmp_path)
    print(f"bombs alone: {bombs['peak_mb'] - bombs['baseline_mb']:.1f} MB over the baseline")
    assert bombs["peak_mb"] - bombs["baseline_mb"] < 10
