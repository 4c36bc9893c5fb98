"""The one job (`autocrop.job.run_job`): what it renders for each spec, its manifest, and that
every door (CLI, API, S3 function) answers with that job's crops and nothing of its own."""

from __future__ import annotations

import io
import json

import pytest
import skimage.data
from fastapi.testclient import TestClient
from PIL import Image

from autocrop import Box, CropOptions, InvalidOptionsError, analyse
from autocrop.cli import main as cli_main
from autocrop.job import OutputSpec, crop_file_name, fit_within, ratio_slug, run_job

RATIOS = ("1:1", "16:9", "4:5")


@pytest.fixture(scope="module")
def photo() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).resize((900, 600)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def options() -> CropOptions:
    return CropOptions.from_ratios(RATIOS)


def boxes(manifest: dict) -> dict[str, list[int]]:
    return {c["ratio"]: c["box"] for c in manifest["crops"]}


def test_names_and_preview_sizes_known_answers():
    assert ratio_slug("16:9") == "16x9" and ratio_slug("1.91:1") == "1.91x1"
    assert crop_file_name("16:9", "jpeg") == "16x9.jpg"
    assert crop_file_name("4:5", "JPG", "photo_") == "photo_4x5.jpg"
    assert crop_file_name("1:1", "webp", "a/") == "a/1x1.webp"
    with pytest.raises(InvalidOptionsError):
        crop_file_name("1:1", "gif")
    assert fit_within(Box(0, 0, 1024, 768), 512) == (512, 384)
    assert fit_within(Box(0, 0, 300, 200), 512) == (300, 200)  # never enlarged


def test_the_job_renders_what_the_spec_asks_and_the_manifest_says_so(photo: bytes, options: CropOptions):
    spec = OutputSpec(size=(200, 200), sizes={"16:9": (320, 180)}, fmt="png", ratios=("1:1", "16:9"))
    done = run_job(photo, options, spec)
    assert boxes(done.manifest()) == {c.ratio: c.box.to_list() for c in analyse(photo, options).crops}
    rendered = {crop.ratio: out for crop, out in done.rendered()}
    assert sorted(rendered) == ["16:9", "1:1"]  # 4:5 analysed, not rendered
    assert (rendered["16:9"].width, rendered["16:9"].height) == (320, 180)
    assert (rendered["1:1"].width, rendered["1:1"].height) == (200, 200)
    for out in rendered.values():
        assert out.media_type == "image/png"
        assert Image.open(io.BytesIO(out.data)).size == (out.width, out.height)
    entries = {c["ratio"]: c for c in done.manifest()["crops"]}
    assert entries["16:9"]["size"] == [320, 180] and entries["16:9"]["media_type"] == "image/png"
    assert "size" not in entries["4:5"]
    assert done.debug_png is None and "render_ms" in done.manifest()["timings"]
    json.dumps(done.manifest())  # JSON as it stands


def test_previews_shrink_to_the_long_side_and_full_resolution_is_the_box(photo: bytes, options: CropOptions):
    previews = run_job(photo, options, OutputSpec(max_side=128))
    full = run_job(photo, options, OutputSpec())
    for (crop, small), (_, big) in zip(previews.rendered(), full.rendered(), strict=True):
        assert max(small.width, small.height) == min(128, max(crop.box.w, crop.box.h))
        assert (big.width, big.height) == (crop.box.w, crop.box.h) and not big.upscaled


def test_analysis_only_and_debug_only(photo: bytes, options: CropOptions):
    done = run_job(photo, options, OutputSpec(render=False, debug=True))
    assert done.outputs == () and list(done.rendered()) == []
    assert Image.open(io.BytesIO(done.debug_png)).format == "PNG"
    assert len(done.manifest()["crops"]) == len(RATIOS)


@pytest.mark.parametrize(
    "spec",
    [lambda: OutputSpec(fmt="gif"), lambda: OutputSpec(quality=0), lambda: OutputSpec(quality=101)],
)
def test_a_bad_spec_fails_before_any_work(spec):
    with pytest.raises(InvalidOptionsError):
        spec()


@pytest.mark.parametrize("spec", [OutputSpec(sizes={"3:2": (300, 200)}), OutputSpec(ratios=("2:1",))])
def test_a_spec_naming_ratios_not_cropped_is_refused(photo: bytes, options: CropOptions, spec: OutputSpec):
    with pytest.raises(InvalidOptionsError, match="not cropped"):
        run_job(photo, options, spec)


def test_a_repeated_ratio_is_one_crop(photo: bytes):
    options = CropOptions.from_ratios("1:1, 16:9,1:1")
    assert options.ratios == ("1:1", "16:9")
    assert [c.ratio for c in run_job(photo, options, OutputSpec(render=False)).result.crops] == ["1:1", "16:9"]


def test_every_door_answers_with_the_jobs_crops(photo: bytes, options: CropOptions, tmp_path, capsys):
    """CLI, API and the S3 function's manifest hold the job's boxes and sizes, unchanged."""
    from functions.api.app import app

    job = run_job(photo, options, OutputSpec())
    expected = boxes(job.manifest())

    src = tmp_path / "photo.jpg"
    src.write_bytes(photo)
    out_dir = tmp_path / "out"
    ratio_args = [arg for r in RATIOS for arg in ("--ratio", r)]
    assert cli_main(["crop", str(src), *ratio_args, "--ratio", "1:1", "-o", str(out_dir), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert boxes(line) == expected  # the repeated --ratio 1:1 is merged
    for entry in line["crops"]:
        assert entry["file"].endswith(crop_file_name(entry["ratio"], "jpeg", "photo_"))
        assert Image.open(entry["file"]).size == (entry["box"][2], entry["box"][3]) == tuple(entry["size"])

    client = TestClient(app)
    answer = client.post("/v1/crop", params={"ratios": ",".join(RATIOS)}, content=photo,
                         headers={"content-type": "image/jpeg"}).json()  # fmt: skip
    assert boxes(answer) == expected


def test_each_crop_carries_its_focal_point_the_centre_of_its_box(photo: bytes, options: CropOptions):
    manifest = run_job(photo, options, OutputSpec(render=False)).manifest()
    for entry in manifest["crops"]:
        x, y, w, h = entry["box"]
        assert entry["focal_point"] == [round((x + w / 2) / manifest["width"], 4), round((y + h / 2) / manifest["height"], 4)]
        assert all(0 < v < 1 for v in entry["focal_point"])
