"""The Lambda layer for python3.13 on arm64: built for real, stripped, and within the limit."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import skimage

ROOT = Path(__file__).resolve().parents[2]
ZIP = ROOT / "build" / "layer-arm64.zip"
#: Function + layer must stay this far under Lambda's 250 MB so the models can grow
#: (onnxruntime, YuNet's runtime, takes 23.7 MB of what was 44 MB: docs/speed.md).
GROWTH_ROOM = 20_000_000


def load_build_module():
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "infra" / "build_layer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sizes_are_printed_and_fit_with_room_to_grow(lambda_layer: dict):
    report, output = lambda_layer["report"], lambda_layer["output"]
    for line in (
        "layer unzipped",
        "layer zipped",
        "function unzipped",
        "total unzipped",
        "headroom",
    ):
        assert line in output
    assert report["arch"] == "arm64"
    assert report["layer_zipped"] == ZIP.stat().st_size
    assert report["total_unzipped"] == report["layer_unzipped"] + report["function_unzipped"]
    assert report["limit"] == 262_144_000
    assert report["headroom"] >= GROWTH_ROOM, f"only {report['headroom'] / 1e6:.1f} MB left"
    print(
        f"\nlayer arm64: {report['layer_unzipped'] / 1e6:.1f} MB unzipped, "
        f"{report['layer_zipped'] / 1e6:.1f} MB zipped, headroom {report['headroom'] / 1e6:.1f} MB"
    )


def test_layer_holds_the_engine_models_and_runtime_deps(lambda_layer: dict):
    names = set(zipfile.ZipFile(ZIP).namelist())
    assert all(n.startswith("python/") for n in names)  # Lambda puts /opt/python on sys.path
    engine = {
        p.relative_to(ROOT / "layers").as_posix()
        for p in (ROOT / "layers" / "autocrop").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {f"python/{p}" for p in engine} <= names
    assert any(n.startswith("python/autocrop/models/") and n.endswith(".onnx") for n in names)
    for package in ("numpy", "cv2", "ai_edge_litert", "onnxruntime", "PIL", "pillow_heif", "fastapi", "mangum",
                    "aws_lambda_powertools", "pydantic_settings", "multipart"):  # fmt: skip
        assert f"python/{package}/__init__.py" in names, package


def test_layer_is_stripped(lambda_layer: dict):
    names = zipfile.ZipFile(ZIP).namelist()
    assert not [n for n in names if n.endswith(".pyi")]
    # The only bytecode: what the runtime's interpreter compiled for each source (see below).
    bytecode = {n for n in names if "/__pycache__/" in n or n.endswith(".pyc")}
    assert bytecode == set(expected_bytecode(names, lambda_layer["report"]))
    assert not [n for n in names if "/tests/" in n]
    assert not [n for n in names if "WebGpu" in n]
    # the runtime provides boto3; uvicorn only serves the local stack
    assert not [
        n for n in names if n.startswith(("python/boto3/", "python/botocore/", "python/uvicorn/"))
    ]


def expected_bytecode(names: list[str], report: dict) -> list[str]:
    """One cpython-313 pyc per source when the build compiled bytecode (in the arm64 root),
    none otherwise."""
    if not report.get("bytecode"):
        return []
    tag = "cpython-" + report["bytecode"].split()[0].removeprefix("python").replace(".", "")
    expected = []
    for name in names:
        if name.endswith(".py"):
            folder, _, file = name.rpartition("/")
            expected.append(f"{folder}/__pycache__/{file[:-3]}.{tag}.pyc")
    return expected


def test_bytecode_is_unchecked_hash_for_the_runtime(lambda_layer: dict):
    """Where the arm64 root was there to compile it, every source has an unchecked-hash pyc
    for python3.13 (valid in a zip: no timestamps; loaded without reading the source)."""
    build = load_build_module()
    report = lambda_layer["report"]
    if not report.get("bytecode"):
        _, why = build.find_interpreter("arm64", build.PYTHON_VERSION)
        pytest.skip(f"layer built without bytecode: {why}")
    assert report["bytecode"].startswith(f"python{build.PYTHON_VERSION} ")
    with zipfile.ZipFile(ZIP) as zf:
        pycs = [n for n in zf.namelist() if n.endswith(".pyc")]
        assert len(pycs) == report["bytecode_modules"] > 1000
        magic = {3571: "3.13"}  # importlib.util.MAGIC_NUMBER of each runtime version
        for name in pycs[:: max(1, len(pycs) // 50)]:
            header = zf.read(name)[:16]
            assert magic[int.from_bytes(header[:2], "little")] == build.PYTHON_VERSION, name
            assert int.from_bytes(header[4:8], "little") == 0b01, name  # hash-based, unchecked


def test_native_code_is_arm64(lambda_layer: dict):
    with zipfile.ZipFile(ZIP) as zf:
        libraries = [n for n in zf.namelist() if ".so" in n.rsplit("/", 1)[-1]]
        assert len(libraries) > 20
        machines = set()
        for name in libraries:
            with zf.open(name) as f:
                header = f.read(20)
            if header[:4] == b"\x7fELF":
                machines.add(int.from_bytes(header[18:20], "little"))
    assert machines == {0xB7}  # EM_AARCH64


def test_rebuild_is_byte_identical(lambda_layer: dict, tmp_path: Path):
    """Same inputs, same bytes: a deploy publishes a new layer version only for a change."""
    build = load_build_module()
    wheels = ROOT / "build" / "wheels" / "arm64-py3.13"  # filled by the session build
    digests = []
    for run in ("a", "b"):
        report = build.build_layer("arm64", tmp_path / run, wheels=wheels)
        digests.append(hashlib.sha256((ROOT / report.zip_path).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_over_the_limit_fails(capsys: pytest.CaptureFixture[str]):
    build = load_build_module()
    report = build.LayerReport(
        arch="arm64", zip_path="build/layer-arm64.zip", layer_unzipped=260_000_000,
        layer_zipped=90_000_000, function_unzipped=3_000_000, limit=build.LAMBDA_UNZIPPED_LIMIT,
    )  # fmt: skip
    assert build.print_report(report) == 1
    assert "FAIL" in capsys.readouterr().err


def test_runtime_requirements_come_from_pyproject():
    build = load_build_module()
    requirements = build.runtime_requirements()
    names = {build._requirement_name(r) for r in requirements}
    assert {"numpy", "opencv-python-headless", "ai-edge-litert", "onnxruntime", "fastapi", "mangum"} <= names
    assert not names & {"boto3", "uvicorn"}


SMOKE = """
import base64, json, sys
layer, function, runtime, event_path, photo_path = sys.argv[1:6]
sys.path[:0] = [function, layer]
sys.path.append(runtime)  # what the Lambda runtime provides: boto3 (/var/runtime)
import functions.api.app as api

event = json.load(open(event_path))
photo = open(photo_path, "rb").read()
event["body"] = base64.b64encode(photo).decode()
event["headers"]["content-length"] = str(len(photo))
response = api.handler(event, None)
loaded = {name: sys.modules[name].__file__ for name in
          ("numpy", "cv2", "ai_edge_litert", "onnxruntime", "PIL", "fastapi", "mangum", "pydantic", "autocrop")}
print(json.dumps({"status": response["statusCode"], "body": json.loads(response["body"]),
                  "loaded": loaded}))
"""


#: What the Lambda runtime puts on sys.path besides the function and its layers (the layer
#: leaves boto3 out for it): boto3 and what it imports.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def runtime_sdk(folder: Path) -> Path:
    """A folder holding (links to) this machine's copies of RUNTIME_SDK."""
    folder.mkdir()
    for module in RUNTIME_SDK:
        origin = Path(importlib.util.find_spec(module).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


@pytest.mark.slow
def test_the_stripped_layer_serves_a_crop(tmp_path: Path):
    """Function package + stripped layer alone on sys.path (no virtualenv) answer a real API
    Gateway request with the shipped models. Built for the machine running the test (its
    CPU, its Python), as an arm64 python3.13 layer cannot run here (tests/infra/test_arm64.py runs
    that one under emulation); same recipe otherwise."""
    build = load_build_module()
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheels = ROOT / "build" / "wheels" / f"{arch}-py{version}"
    build.build_layer(arch, tmp_path / "build", wheels=wheels, python_version=version)
    function = tmp_path / "function"
    shutil.copytree(
        ROOT / "functions", function / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    layer = tmp_path / "build" / f"layer-{arch}" / "python"
    event = ROOT / "tests" / "events" / "apigw_http_v2_crop_json.json"
    photo = Path(skimage.__file__).parent / "data" / "astronaut.png"

    runtime = runtime_sdk(tmp_path / "runtime")
    arguments = [str(p) for p in (layer, function, runtime, event, photo)]
    done = subprocess.run(
        [sys.executable, "-S", "-E", "-c", SMOKE, *arguments],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == 200, answer
    assert all(path.startswith(str(layer)) for path in answer["loaded"].values()), answer["loaded"]
    body = answer["body"]
    assert [c["ratio"] for c in body["crops"]] == ["1:1", "16:9"]
    assert body["models"]["saliency"] != "centre-bias-fallback"  # LiteRT + model in the layer
    assert body["faces"]  # YuNet through the layer's OpenCV


def fake_layer(build, tmp_path: Path) -> tuple[Path, Path, Path, Callable[[], str]]:
    """An engine directory, a build script and a 'built' layer in tmp_path, without pip."""
    engine, build_dir = tmp_path / "autocrop", tmp_path / "build"
    (engine / "models").mkdir(parents=True)
    (engine / "engine.py").write_text("x = 1\n")
    (engine / "models" / "m.onnx").write_bytes(b"\0model")
    script = tmp_path / "build.py"
    script.write_text("# build\n")
    build_dir.mkdir()

    def digest() -> str:
        return build.inputs_digest(
            "arm64", "3.13", ["numpy==2.0"], ["numpy==2.0"], engine_dir=engine, build_script=script
        )

    (build_dir / "layer-arm64.zip").write_bytes(b"PK zip")
    (build_dir / "layer-arm64.json").write_text("{}")
    build.record_inputs(build_dir, "arm64", digest())
    return engine, build_dir, script, digest


def test_if_stale_rebuilds_only_for_a_change(tmp_path: Path):
    """`infra/build_layer.py --if-stale` (npm run package): the recorded input digest decides, not mtimes."""
    build = load_build_module()
    engine, build_dir, script, digest = fake_layer(build, tmp_path)
    assert build.stale_reason(build_dir, "arm64", digest()) is None

    # Caches and tests do not go into the layer, so they do not make it stale; touching doesn't.
    (engine / "__pycache__").mkdir()
    (engine / "__pycache__" / "engine.cpython-313.pyc").write_bytes(b"pyc")
    (engine / "tests").mkdir()
    (engine / "tests" / "test_x.py").write_text("")
    os.utime(engine / "engine.py")
    assert build.stale_reason(build_dir, "arm64", digest()) is None

    (engine / "engine.py").write_text("x = 2\n")
    assert "inputs changed" in build.stale_reason(build_dir, "arm64", digest())
    build.record_inputs(build_dir, "arm64", digest())
    assert build.stale_reason(build_dir, "arm64", digest()) is None

    for change in (
        lambda: (engine / "models" / "new.tflite").write_bytes(b"new model"),
        lambda: (engine / "models" / "new.tflite").rename(engine / "models" / "renamed.tflite"),
        lambda: script.write_text("# build, changed\n"),
    ):
        change()
        assert "inputs changed" in build.stale_reason(build_dir, "arm64", digest())
        build.record_inputs(build_dir, "arm64", digest())

    base = dict(engine_dir=engine, build_script=script)
    pinned = build.inputs_digest("arm64", "3.13", ["numpy==2.0"], ["numpy==2.0"], **base)
    assert pinned == digest()
    assert pinned != build.inputs_digest("x86_64", "3.13", ["numpy==2.0"], ["numpy==2.0"], **base)
    assert pinned != build.inputs_digest("arm64", "3.13", ["numpy==2.1"], ["numpy==2.0"], **base)
    assert pinned != build.inputs_digest("arm64", "3.13", ["numpy==2.0"], ["numpy==2.1"], **base)
    # bytecode compiled by the arm64 root's python makes another zip than sources only
    compiled = "python3.13 3.13.5-2 (Debian trixie arm64)"
    assert pinned != build.inputs_digest(
        "arm64", "3.13", ["numpy==2.0"], ["numpy==2.0"], **base, bytecode=compiled
    )


def test_if_stale_rebuilds_a_missing_or_replaced_zip(tmp_path: Path):
    build = load_build_module()
    _, build_dir, _, digest = fake_layer(build, tmp_path)
    (build_dir / "layer-arm64.zip").write_bytes(b"PK another zip")
    assert "not the zip that was built" in build.stale_reason(build_dir, "arm64", digest())
    (build_dir / "layer-arm64.zip").unlink()
    assert "missing" in build.stale_reason(build_dir, "arm64", digest())
    assert "missing" in build.stale_reason(build_dir, "x86_64", digest())  # per architecture

    _, build_dir, _, digest = fake_layer(build, tmp_path / "unrecorded")
    build.inputs_record_path(build_dir, "arm64").unlink()  # a zip from before --if-stale
    assert "no record" in build.stale_reason(build_dir, "arm64", digest())


def test_engine_digest_covers_what_copy_engine_copies(tmp_path: Path):
    build = load_build_module()
    build.copy_engine(tmp_path)
    copied = sorted(
        p.relative_to(tmp_path / "autocrop") for p in tmp_path.rglob("*") if p.is_file()
    )
    assert copied == [p.relative_to(build.ENGINE_DIR) for p in build.engine_files()]


def test_npm_package_builds_a_stale_layer_first():
    """A fresh clone packages with `npm run package`: the layer is built when stale, with the
    project's .venv Python, before `serverless package`."""
    script = json.loads((ROOT / "package.json").read_text())["scripts"]["package"]
    first, _, then = script.partition("&&")
    assert first.split() == ["sh", "infra/build_layer.sh"] and "serverless package" in then
    done = subprocess.run(
        ["sh", "infra/build_layer.sh", "--help"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHON": sys.executable}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--if-stale" in done.stdout
    assert "--if-stale" in (ROOT / "infra" / "build_layer.sh").read_text()
