"""The deployed artifact on arm64: the built layer zip, unmodified, run in an emulated arm64 Linux.

    python -m infra.arm64_check               # everything; a JSON summary; exit 1 on any mismatch
    python -m infra.arm64_check --root-only   # tools and the arm64 root only (from then on
                                              # infra/build_layer.py compiles the layer's bytecode there)
    python -m infra.arm64_check --function-zip .serverless/autocrop.zip   # the serverless package's
    python -m infra.arm64_check --cold-start  # also: the cold start's imports with and without
                                              # the layer's bytecode

From a fresh Debian or Ubuntu machine, as root (apt, binfmt_misc, chroot and mounts need it):

1. installs qemu-user-static, mmdebstrap, arch-test and debian-archive-keyring when missing,
   and registers qemu-aarch64 with binfmt_misc (flag F, so it works inside a chroot);
2. makes, once, an arm64 Debian root with mmdebstrap from Debian's archive: the release whose
   python3.X is the runtime's (infra/build_layer.py: python3.13 -> trixie), essential packages,
   python3.13 and libstdc++6 (the Lambda runtime has it; manylinux wheels such as OpenCV's
   rely on the system's). The runtime's boto3 goes into /var/runtime at the versions pinned
   here (the layer leaves boto3 out because Lambda provides it). Cached in
   ~/.cache/autocrop-arm64 ($AUTOCROP_ARM64_CACHE) with the pyc cache of infra/build_layer.py;
3. builds build/layer-arm64.zip when stale (infra/build_layer.py --if-stale: with the root there,
   the layer's bytecode is compiled by the root's python3.13);
4. unpacks the layer zip as it is where Lambda does (/opt/python) and the function package
   (functions/** as serverless.yml packages it, or --function-zip) at /var/task, both
   mounted read-only as on Lambda;
5. starts a moto server on 127.0.0.1 (the chroot shares this network namespace), uploads three
   photos (PNG, JPEG and a HEIC made here with pillow-heif), and calls the real handlers
   - functions.s3.trigger.handler with an S3 ObjectCreated event per photo, writing the
     crops and crops.json to an output bucket, and
   - functions.api.app.handler (Mangum) with an API Gateway HTTP API v2 event per photo,
   once in the arm64 root under qemu and once here on x86_64 (the project's .venv, the same
   function package and events: the reference), each into its own output bucket;
6. compares every crop box and face box per photo, ratio and door (allowed: 1 pixel), the
   statuses and model names, and checks what ran: aarch64, the runtime's Python, modules from
   /opt/python and /var/task, the layer's bytecode used. The summary says what matched and how
   long each step took.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "arm64-check"
EVENTS = ROOT / "tests" / "events"
#: Debian's archive, where the root's packages come from.
MIRROR = os.environ.get("AUTOCROP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: Host packages providing each tool this check needs.
TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "arch-test": "arch-test",  # mmdebstrap's test that a foreign architecture runs here
    "qemu-aarch64-static": "qemu-user-static",
    "unshare": "util-linux",
    "chroot": "coreutils",
}
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: binfmt_misc registration of qemu-aarch64 (the magic and mask of qemu's own
#: qemu-binfmt-conf.sh); F: the kernel opens the interpreter now, so chroots need no copy.
BINFMT_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
BINFMT_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
#: The SDK the Lambda Python runtime provides (the layer leaves it out); installed into the
#: root's /var/runtime at the versions pinned here.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
#: What serverless.yml's `package.patterns` must be for function_package() to match it.
FUNCTION_PATTERNS = ["!**", "functions/**", "!functions/**/__pycache__/**"]
#: The photos: (source package, file inside it, key in the input bucket, content type).
#: astronaut and grace_hopper have faces (YuNet); chelsea goes in as HEIC.
PHOTOS = (
    ("skimage", "data/astronaut.png", "photos/astronaut.png", "image/png"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "photos/grace_hopper.jpg", "image/jpeg"),
    ("skimage", "data/chelsea.png", "photos/chelsea.heic", "image/heic"),
)
INPUT_BUCKET = "autocrop-input"
OUTPUT_BUCKETS = {"arm64": "autocrop-output-arm64", "x86_64": "autocrop-output-x86-64"}
OUTPUT_PREFIX = "crops"
#: Boxes and faces that differ by at most this many pixels between the architectures match.
TOLERANCE_PX = 1
#: An int8 saliency network's arm64 and x86_64 kernels round differently (measured: up to 7-8
#: quantisation steps on ~14% of map cells), so two neighbouring windows whose scores nearly
#: tie can swap places. With an int8 model shipped, such a crop is accepted (and counted apart)
#: when it is one position step of the candidate grid away (CropOptions.position_step of the
#: photo's side) and both machines' best scores are within this share of each other. A float
#: model (the shipped float16 one) gives the same map on both, so then the check is strict:
#: every box within TOLERANCE_PX, as is `--strict` whatever ships.
NEAR_TIE = 0.005


def shipped_saliency_is_int8(models_dir: Path = ROOT / "layers" / "autocrop" / "models") -> bool:
    """Whether the saliency model the layer ships is int8 (its card's `quantization`)."""
    try:
        card = json.loads((models_dir / "saliency.json").read_text())
    except (OSError, ValueError):
        return True  # unknown: allow the int8 near ties, the check still names them
    return card.get("quantization") == "int8"


#: Where the tools live (chroot and mount are in sbin, which a user's PATH may lack).
TOOL_PATH = f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin"


def tool_env() -> dict[str, str]:
    return {**os.environ, "PATH": TOOL_PATH}


class Unavailable(RuntimeError):
    """This machine cannot run the check (and why)."""


def load_build() -> Any:
    """infra/build_layer.py (the runtime, the root's place, the bytecode interpreter)."""
    if "layer_build" in sys.modules:
        return sys.modules["layer_build"]
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "infra" / "build_layer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def log(message: str) -> None:
    print(f"[arm64-check] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# This machine: tools and emulation


def unavailable_reason() -> str | None:
    """Why the check cannot run here at all, or None (missing tools can still be installed)."""
    if sys.platform != "linux":
        return "needs Linux (binfmt_misc, chroot)"
    if os.geteuid() != 0:
        return "needs root: apt-get, binfmt_misc, mmdebstrap --mode=root, chroot and mounts"
    if os.uname().machine not in ("x86_64", "aarch64", "arm64"):
        return f"no plan for a {os.uname().machine} host"
    return None


def missing_packages() -> list[str]:
    """Host packages to install for the tools (and the keyring of Debian's archive)."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool, path=TOOL_PATH) is None})
    if not KEYRING.is_file():
        missing.append("debian-archive-keyring")
    return missing


def ensure_tools() -> list[str]:
    """apt-get install what is missing; returns what was installed."""
    reason = unavailable_reason()
    if reason:
        raise Unavailable(reason)
    missing = missing_packages()
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise Unavailable(f"install {', '.join(missing)} (no apt-get here)")
    log(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable(f"{' '.join(command[:2])} failed: {done.stderr[-1500:]}")
    still = missing_packages()
    if still:
        raise Unavailable(f"still missing after apt-get install: {still}")
    return missing


def ensure_emulation() -> str:
    """Register qemu-aarch64 with binfmt_misc unless arm64 binaries already run; says how."""
    build = load_build()
    if os.uname().machine in ("aarch64", "arm64"):
        return "native"
    if not build.emulation_ready():
        binfmt = build.BINFMT_AARCH64.parent
        if not (binfmt / "register").exists():
            done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)],
                                  capture_output=True, text=True, env=tool_env())  # fmt: skip
            if done.returncode != 0:
                raise Unavailable(f"cannot mount binfmt_misc: {done.stderr.strip()}")
        if build.BINFMT_AARCH64.exists():  # registered (qemu-user-static's postinst), disabled
            build.BINFMT_AARCH64.write_text("1")
        else:
            qemu = shutil.which("qemu-aarch64-static", path=TOOL_PATH)
            entry = f":qemu-aarch64:M::{BINFMT_MAGIC}:{BINFMT_MASK}:{qemu}:F"
            try:
                (binfmt / "register").write_text(entry)
            except OSError as e:
                raise Unavailable(f"cannot register qemu-aarch64 with binfmt_misc: {e}") from e
        if not build.emulation_ready():
            raise Unavailable("qemu-aarch64 is registered but not enabled")
    version = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True)
    return version.stdout.splitlines()[0] if version.returncode == 0 else "qemu-user"


# ---------------------------------------------------------------------------------------------
# The arm64 root


def root_recipe() -> dict[str, Any]:
    """What the root is made of: a change rebuilds it."""
    build = load_build()
    version = build.PYTHON_VERSION
    return {
        "suite": build.DEBIAN_SUITES[version],
        "arch": "arm64",
        "variant": "essential",
        "packages": [f"python{version}", "libstdc++6"],
        "mirror": MIRROR,
        "recipe": 1,
    }


def root_path() -> Path:
    build = load_build()
    root = build.arm64_root(build.PYTHON_VERSION)
    if root is None:
        raise Unavailable(f"no Debian release ships python{build.PYTHON_VERSION} (DEBIAN_SUITES)")
    return root


def root_record(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads(load_build().root_record_path(root).read_text())
    except (OSError, ValueError):
        return None


def ensure_root() -> tuple[Path, dict[str, Any], bool]:
    """The arm64 root (made when missing or its recipe changed); its record; whether it was
    made now."""
    build = load_build()
    root, recipe = root_path(), root_recipe()
    record = root_record(root)
    if record is not None and record.get("recipe") == recipe and root.is_dir():
        return root, record, False
    log(f"making the arm64 root {root} (Debian {recipe['suite']}; a few minutes)")
    fresh = root.with_name(root.name + ".new")
    for stale in (fresh, root):
        _remove_tree(stale)
    build.root_record_path(root).unlink(missing_ok=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    command = [
        "mmdebstrap", "--mode=root", f"--arch={recipe['arch']}", f"--variant={recipe['variant']}",
        f"--include={','.join(recipe['packages'])}",
        *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        recipe["suite"], str(fresh), recipe["mirror"],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=tool_env())
    if done.returncode != 0:
        _remove_tree(fresh)
        raise RuntimeError(f"mmdebstrap failed ({done.returncode}): {done.stderr[-3000:]}")
    fresh.rename(root)
    seconds = round(time.monotonic() - started, 1)
    python = build.debian_package_version(root, f"python{build.PYTHON_VERSION}-minimal")
    record = {
        "recipe": recipe,
        "python_package": python,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": seconds,
        "mmdebstrap": subprocess.run(
            ["mmdebstrap", "--version"], capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
    }
    build.root_record_path(root).write_text(json.dumps(record, indent=2) + "\n")
    log(f"arm64 root made in {seconds:.0f} s (python{build.PYTHON_VERSION} {python})")
    return root, record, True


def _remove_tree(path: Path) -> None:
    """rm -rf, never across a mount point a run left behind (there should be none: mounts
    live in the run's own mount namespace)."""
    if not path.exists():
        return
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def ensure_runtime_sdk(root: Path) -> list[str]:
    """boto3 & co. at the pinned versions in the root's /var/runtime, as Lambda provides it."""
    build = load_build()
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in RUNTIME_SDK]
    runtime = root / "var" / "runtime"
    stamp = runtime / ".autocrop-sdk"
    if stamp.is_file() and stamp.read_text().split() == pins:
        return pins
    wheels = build.arm64_cache() / "runtime-wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(runtime, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    platform_args = ["--only-binary=:all:", "--no-deps", "--python-version", build.PYTHON_VERSION,
                     "--implementation", "cp", "--platform", "manylinux2014_aarch64"]  # fmt: skip
    install = [*pip, "install", "--target", str(runtime), "--no-compile", "--no-index",
               "--find-links", str(wheels), *platform_args, *pins]  # fmt: skip
    if subprocess.run(install, capture_output=True).returncode != 0:
        log(f"downloading the runtime SDK wheels into {wheels}")
        subprocess.run([*pip, "download", "--dest", str(wheels), *platform_args, *pins],
                       check=True, capture_output=True)  # fmt: skip
        shutil.rmtree(runtime, ignore_errors=True)
        subprocess.run(install, check=True, capture_output=True)
    stamp.write_text("\n".join(pins) + "\n")
    return pins


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One check at a time per cache (they share the root's /opt, /var/task and /tmp)."""
    cache = load_build().arm64_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# The artifacts: layer zip, function package, photos


def build_layer() -> tuple[dict[str, Any], float, str]:
    """infra/build_layer.py --if-stale (arm64); returns its size report, seconds, and output."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "infra" / "build_layer.py"), "--if-stale"],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"infra/build_layer.py --if-stale failed:\n{done.stdout}{done.stderr}")
    report = json.loads((ROOT / "build" / "layer-arm64.json").read_text())
    return report, seconds, done.stdout


def check_function_patterns() -> None:
    """function_package() copies what serverless.yml's patterns select: make sure they are
    still the ones it knows."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !Ref, !Sub, ...
    config = yaml.load((ROOT / "serverless.yml").read_text(), Loader=Loader)
    patterns = config["package"]["patterns"]
    if patterns != FUNCTION_PATTERNS:
        raise RuntimeError(f"serverless.yml package.patterns {patterns} != {FUNCTION_PATTERNS}: "
                           "update function_package() or pass --function-zip")  # fmt: skip


def function_package(zip_path: Path) -> Path:
    """The function package as serverless.yml makes it (functions/**, no __pycache__)."""
    check_function_patterns()
    files = sorted(p for p in (ROOT / "functions").rglob("*")
                   if p.is_file() and "__pycache__" not in p.relative_to(ROOT).parts)  # fmt: skip
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.relative_to(ROOT).as_posix())
    return zip_path


def unzip(zip_path: Path, dest: Path) -> int:
    """Extract as Lambda does (file modes kept); returns the files extracted."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for info in infos:
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)
    return len(infos)


def make_photos(folder: Path) -> list[dict[str, str]]:
    """The three photos (the HEIC encoded here with pillow-heif)."""
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for package, relative, key, content_type in PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise Unavailable(f"the sample photos need {package} (pip install -e '.[dev]')")
        source = Path(list(spec.submodule_search_locations)[0]) / relative
        path = folder / Path(key).name
        if content_type == "image/heic":
            with Image.open(source) as im:
                im.convert("RGB").save(path, format="HEIF", quality=90)
        else:
            shutil.copyfile(source, path)
        photos.append({"key": key, "content_type": content_type, "path": str(path)})
    return photos


# ---------------------------------------------------------------------------------------------
# The runs


def handler_environment(endpoint: str, output_bucket: str) -> dict[str, str]:
    """What the functions' environment holds on Lambda (serverless.yml), for a local stack."""
    from infra.local_stack import aws_environment

    version = load_build().PYTHON_VERSION
    return {
        **aws_environment(endpoint),
        "AUTOCROP_INPUT_BUCKET": INPUT_BUCKET,
        "AUTOCROP_OUTPUT_BUCKET": output_bucket,
        "AUTOCROP_OUTPUT_PREFIX": OUTPUT_PREFIX,
        "POWERTOOLS_SERVICE_NAME": "autocrop",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "AWS_LAMBDA_FUNCTION_NAME": "autocrop-arm64-check",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
        "LANG": "C.UTF-8",  # Lambda says en_US.UTF-8; the root has no locales (same encoding)
    }


def lambda_sys_path(version: str) -> str:
    """Lambda's module search path before the standard library: the function, the layer,
    the runtime's SDK."""
    return f"/var/task:/opt/python/lib/python{version}/site-packages:/opt/python:/var/runtime"


def run_in_root(root: Path, argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`argv` in the root, chrooted, in a mount namespace of its own (gone when it ends):
    /proc, a tmpfs /dev/shm, and /opt, /var/task and /var/runtime read-only as on Lambda. The
    network namespace is this machine's: 127.0.0.1 inside is 127.0.0.1 here.

    No /sys: under qemu-user it would be this machine's x86 one, and LiteRT's cpuinfo then
    crashes XNNPACK (SIGSEGV in allocate_tensors); without it cpuinfo says it cannot read
    the CPU lists and the kernels follow the CPU features qemu reports (QEMU_CPU)."""
    script = r"""
set -eu
root=$1; shift
mount -t proc proc "$root/proc"
mount -t tmpfs -o size=512m tmpfs "$root/dev/shm"
for d in opt var/task var/runtime; do
  mount --bind "$root/$d" "$root/$d"
  mount -o remount,bind,ro "$root/$d"
done
exec chroot "$root" /usr/bin/env -i "$@"
"""
    assignments = [f"{k}={v}" for k, v in env.items()]
    command = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
               str(root), *assignments, *argv]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=tool_env())


def stage_root(root: Path, layer_zip: Path, function_zip: Path) -> dict[str, int]:
    """The layer at /opt/python, the function package at /var/task (fresh each run)."""
    counts = {}
    for place, zip_path in (("opt", layer_zip), ("var/task", function_zip)):
        dest = root / place
        _remove_tree(dest)
        dest.mkdir(parents=True)
        counts[place] = unzip(zip_path, dest)
    return counts


def write_config(folder: Path, photos: list[dict[str, str]], output_bucket: str,
                 events: Path, photo_dir: str | None = None, **extra: Any) -> Path:  # fmt: skip
    """The driver's configuration (paths as the driver will see them)."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = [{**p, "path": f"{photo_dir}/{Path(p['path']).name}" if photo_dir else p["path"]}
             for p in photos]  # fmt: skip
    config = {
        "photos": shown,
        "input_bucket": INPUT_BUCKET,
        "output_bucket": output_bucket,
        "output_prefix": OUTPUT_PREFIX,
        "s3_event": f"{events}/s3_put.json",
        "api_event": f"{events}/apigw_http_v2_crop_json.json",
        **extra,
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def run_x86_64(endpoint: str, photos: list[dict[str, str]], function_dir: Path, timeout: float) -> tuple[dict, float]:
    """The reference: the same driver, function package and events on this machine's .venv."""
    folder = WORK / "x86_64"
    config = write_config(folder, photos, OUTPUT_BUCKETS["x86_64"], EVENTS)
    env = {**os.environ, **handler_environment(endpoint, OUTPUT_BUCKETS["x86_64"]),
           "PYTHONPATH": str(function_dir)}  # fmt: skip
    env.pop("PYTHONSAFEPATH", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-P", str(ROOT / "infra" / "arm64_invoke.py"), str(config),
         str(folder / "result.json")],
        cwd=function_dir, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"the x86_64 reference run failed:\n{done.stdout[-2000:]}{done.stderr[-6000:]}")
    return json.loads((folder / "result.json").read_text()), seconds


def run_arm64(
    root: Path, endpoint: str, photos: list[dict[str, str]], timeout: float,
    imports_only: bool = False, without_bytecode: bool = False,
) -> tuple[dict, float, str]:  # fmt: skip
    """The driver in the root under qemu, on the layer and function package staged there."""
    version = load_build().PYTHON_VERSION
    inside = "/tmp/autocrop-check"
    folder = root / inside.lstrip("/")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(EVENTS, folder / "events")
    (folder / "photos").mkdir(parents=True)
    for photo in photos:
        shutil.copyfile(photo["path"], folder / "photos" / Path(photo["path"]).name)
    shutil.copyfile(ROOT / "infra" / "arm64_invoke.py", folder / "arm64_invoke.py")
    write_config(folder, photos, OUTPUT_BUCKETS["arm64"], Path(f"{inside}/events"),
                 f"{inside}/photos", imports_only=imports_only)  # fmt: skip
    env = {**handler_environment(endpoint, OUTPUT_BUCKETS["arm64"]),
           "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
           "PYTHONPATH": lambda_sys_path(version),
           "QEMU_CPU": load_build().EMULATED_CPU}  # read by qemu-user (Graviton2's CPU)  # fmt: skip
    if without_bytecode:  # Python looks for (and writes) pycs only there: all compiled anew
        env["PYTHONPYCACHEPREFIX"] = f"{inside}/no-pycache"
    # -P: the driver's folder stays off sys.path (Lambda's starts with /var/task)
    argv = [f"/usr/bin/python{version}", "-P", f"{inside}/arm64_invoke.py", f"{inside}/config.json",
            f"{inside}/result.json"]  # fmt: skip
    started = time.monotonic()
    done = run_in_root(root, argv, env, timeout)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"the arm64 run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-6000:]}")
    return json.loads((folder / "result.json").read_text()), seconds, done.stderr


# ---------------------------------------------------------------------------------------------
# Comparison


def box_diff(a: list[int] | None, b: list[int] | None) -> int | None:
    """Largest coordinate difference of two boxes (None: one is missing or shapes differ)."""
    if a is None or b is None or len(a) != len(b):
        return None
    return max((abs(p - q) for p, q in zip(a, b, strict=True)), default=0)


def grid_step_px(size: list[int | None]) -> int:
    """One position step of the candidate grid for a photo of `size` (W, H), in pixels."""
    from autocrop import CropOptions

    return math.ceil(CropOptions().position_step * max((v or 0) for v in size))


def classify(diff: int | None, step: int, scores: tuple[float | None, float | None], strict: bool) -> str:
    """ "match" (within TOLERANCE_PX), "near tie" (the neighbouring window of a tie), "mismatch"."""
    if diff is not None and diff <= TOLERANCE_PX:
        return "match"
    a, b = scores
    if strict or diff is None or diff > step or a is None or b is None:
        return "mismatch"
    return "near tie" if abs(a - b) <= NEAR_TIE * max(abs(a), abs(b)) else "mismatch"


def compare(arm: dict[str, Any], x86: dict[str, Any], strict: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Every box per door, photo and ratio (and every face), arm64 against x86_64."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for door in ("uploads", "api"):
        theirs = {entry["key"]: entry for entry in x86[door]}
        for mine in arm[door]:
            key, ref = mine["key"], theirs.get(mine["key"])
            if ref is None:
                problems.append(f"{door} {key}: no x86_64 result")
                continue
            if mine["models"] != ref["models"]:
                problems.append(f"{door} {key}: models {mine['models']} != x86_64 {ref['models']}")
            step = grid_step_px(ref.get("size") or [0, 0])
            pairs = [(f"crop {ratio}", mine["crops"].get(ratio), ref["crops"].get(ratio),
                      (mine["scores"].get(ratio), ref["scores"].get(ratio)))
                     for ratio in sorted(set(mine["crops"]) | set(ref["crops"]))]  # fmt: skip
            if len(mine["faces"]) != len(ref["faces"]):
                problems.append(f"{door} {key}: {len(mine['faces'])} faces, x86_64 {len(ref['faces'])}")
            pairs += [(f"face {i + 1}", a, b, (None, None))  # faces have no ties to break
                      for i, (a, b) in enumerate(zip(mine["faces"], ref["faces"], strict=False))]  # fmt: skip
            for what, a, b, scores in pairs:
                diff = box_diff(a, b)
                verdict = classify(diff, step, scores, strict)
                row = {"door": door.rstrip("s"), "key": key, "box": what, "arm64": a, "x86_64": b,
                       "diff_px": diff, "verdict": verdict}  # fmt: skip
                if verdict != "match":
                    row.update(grid_step_px=step, scores={"arm64": scores[0], "x86_64": scores[1]})
                rows.append(row)
                if verdict == "mismatch":
                    problems.append(f"{door} {key} {what}: arm64 {a} vs x86_64 {b} (scores {scores})")
    return rows, problems


def check_arm64_run(arm: dict[str, Any], layer: dict[str, Any], version: str) -> list[str]:
    """What the arm64 run must show, beyond matching boxes."""
    problems = []
    if arm["machine"] != "aarch64":
        problems.append(f"ran on {arm['machine']}, not aarch64")
    if not arm["python"].startswith(version + "."):
        problems.append(f"ran python {arm['python']}, not the runtime's {version}")
    for name, origin in arm["loaded"].items():
        expected = {"functions": "/var/task/", "boto3": "/var/runtime/"}.get(name, "/opt/python/")
        if not (origin or "").startswith(expected):
            problems.append(f"{name} came from {origin}, not {expected}")
    for upload in arm["uploads"]:
        results = (upload["response"] or {}).get("results") or [{}]
        if results[0].get("status") != "cropped" or not upload["crops_json"]:
            problems.append(f"upload {upload['key']}: {results[0]}")
        crops = [k for k in upload["written"] if k.endswith(".jpg") and not k.endswith("/master.jpg")]
        if len(crops) != len(upload["crops"]) or not upload["crops"]:
            problems.append(f"upload {upload['key']}: wrote {upload['written']}")
        saliency = upload["models"].get("saliency", "")
        faces = upload["models"].get("faces") or ""
        if not saliency or "fallback" in saliency or faces != "yunet-2023mar":
            problems.append(f"upload {upload['key']}: models {upload['models']} "
                            "(the saliency TFLite model and YuNet on onnxruntime expected)")  # fmt: skip
    for answer in arm["api"]:
        if answer["status"] != 200:
            problems.append(f"api {answer['key']}: {answer['status']} {answer['error']}")
    if not any(u["faces"] for u in arm["uploads"]):
        problems.append("no faces found on arm64 (YuNet on the layer's onnxruntime)")
    bytecode = arm["bytecode"]["layer"]
    if layer.get("bytecode") and bytecode["from_bytecode"] != bytecode["modules"]:
        problems.append(f"only {bytecode['from_bytecode']} of {bytecode['modules']} layer modules "
                        "loaded from the layer's bytecode")  # fmt: skip
    return problems


# ---------------------------------------------------------------------------------------------
# Main


def prepare() -> dict[str, Any]:
    """Tools, emulation, root and the runtime SDK in it; what was done and how long it took."""
    started = time.monotonic()
    installed = ensure_tools()
    emulator = ensure_emulation()
    root, record, made = ensure_root()
    sdk = ensure_runtime_sdk(root)
    return {
        "root": str(root),
        "root_made_now": made,
        "root_build_s": record.get("build_seconds"),
        "python_package": record.get("python_package"),
        "recipe": record.get("recipe"),
        "emulator": emulator,
        "installed": installed,
        "runtime_sdk": sdk,
        "prepare_s": round(time.monotonic() - started, 1),
    }


def check(function_zip: Path | None = None, timeout: float = 1800, cold_start: bool = False,
          strict: bool = False) -> dict[str, Any]:  # fmt: skip
    """Everything (see the module's doc); returns the summary, "ok" False on any problem."""
    from infra.local_stack import start_moto

    build = load_build()
    version = build.PYTHON_VERSION
    total = time.monotonic()
    timings: dict[str, Any] = {}
    with cache_lock():
        environment = prepare()
        root = Path(environment["root"])
        timings["prepare"] = environment["prepare_s"]
        timings["root_build"] = environment["root_build_s"]
        log("layer: infra/build_layer.py --if-stale")
        report, seconds, _ = build_layer()
        timings["layer_build"] = round(seconds, 1)
        layer_zip = ROOT / report["zip_path"]
        recorded = json.loads(build.inputs_record_path(ROOT / "build", "arm64").read_text())
        zip_sha = build._file_sha256(layer_zip)
        if zip_sha != recorded["zip_sha256"]:
            raise RuntimeError(f"{layer_zip} is not the zip infra/build_layer.py built")

        shutil.rmtree(WORK, ignore_errors=True)
        function_zip = function_zip or function_package(WORK / "function.zip")
        function_dir = WORK / "function"
        unzip(function_zip, function_dir)
        staged = stage_root(root, layer_zip, function_zip)
        photos = make_photos(WORK / "photos")

        server, endpoint = start_moto("127.0.0.1", 0)
        try:
            import boto3

            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
            for bucket in (INPUT_BUCKET, *OUTPUT_BUCKETS.values()):
                s3.create_bucket(Bucket=bucket)
            for photo in photos:
                s3.put_object(Bucket=INPUT_BUCKET, Key=photo["key"], ContentType=photo["content_type"],
                              Body=Path(photo["path"]).read_bytes())  # fmt: skip
            log("x86_64 reference run")
            x86, seconds = run_x86_64(endpoint, photos, function_dir, timeout)
            timings["x86_64_run"] = round(seconds, 1)
            log("arm64 run (emulated: minutes)")
            arm, seconds, stderr = run_arm64(root, endpoint, photos, timeout)
            timings["arm64_run"] = round(seconds, 1)
            timings["arm64_steps"] = arm["timings_s"]
            timings["x86_64_steps"] = x86["timings_s"]
            cold = None
            if cold_start:
                log("cold start imports, with and without the layer's bytecode")
                cold = {}
                for label, without in (("with_bytecode", False), ("without_bytecode", True)):
                    result, seconds, _ = run_arm64(root, endpoint, photos, timeout, True, without)
                    cold[label] = {"wall_s": round(seconds, 1), **result}
        finally:
            server.stop()

    rows, problems = compare(arm, x86, strict)
    problems += check_arm64_run(arm, report, version)
    outputs = {u["key"]: u["written"] for u in arm["uploads"]}
    diffs = [r["diff_px"] for r in rows if r["diff_px"] is not None]
    timings["total"] = round(time.monotonic() - total, 1)
    summary = {
        "ok": not problems,
        "problems": problems,
        "runtime": {
            "python": arm["python"],
            "machine": arm["machine"],
            "cache_tag": arm["implementation"],
            "sys_path": arm["sys_path"][:6],
            "root": environment["root"],
            "debian": f"{environment['recipe']['suite']} arm64, python{version} {environment['python_package']}",
            "emulator": environment["emulator"],
            "cpu": "native" if environment["emulator"] == "native" else build.EMULATED_CPU,
        },  # fmt: skip
        "layer": {
            "zip": report["zip_path"],
            "sha256": zip_sha,
            "zipped_bytes": report["layer_zipped"],
            "unzipped_bytes": report["layer_unzipped"],
            "total_unzipped_bytes": report["total_unzipped"],
            "limit_bytes": report["limit"],
            "headroom_bytes": report["headroom"],
            "bytecode": report.get("bytecode"),
            "bytecode_modules": report.get("bytecode_modules", 0),
            "files_staged": staged,
            "loaded_bytecode": arm["bytecode"],
        },  # fmt: skip
        "loaded_from": arm["loaded"],
        "models": arm["uploads"][0]["models"] if arm["uploads"] else {},
        "outputs": outputs,
        "comparison": {
            "boxes": len(rows),
            "identical": sum(1 for r in rows if r["diff_px"] == 0),
            "within_1px": sum(1 for r in rows if r["verdict"] == "match" and r["diff_px"]),
            "near_ties": sum(1 for r in rows if r["verdict"] == "near tie"),
            "mismatches": sum(1 for r in rows if r["verdict"] == "mismatch"),
            "max_diff_px": max(diffs, default=None),
            "rule": (
                f"match: every coordinate within {TOLERANCE_PX} px; "
                + (
                    "nothing else (--strict)"
                    if strict
                    else f"near tie: a crop one candidate-grid step away whose best scores are "
                    f"within {NEAR_TIE:.1%} (int8 saliency rounds differently per CPU)"
                )
            ),
            "differing": [r for r in rows if r["diff_px"] != 0],
        },
        "timings_s": timings,
    }
    if cold is not None:
        summary["cold_start"] = cold
    if not summary["ok"]:
        summary["arm64_stderr_tail"] = stderr[-3000:]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root-only", action="store_true",
                        help="install the tools and make the arm64 root, nothing else")  # fmt: skip
    parser.add_argument("--function-zip", type=Path,
                        help="the function package to run (default: functions/** as "
                        "serverless.yml packages it)")  # fmt: skip
    parser.add_argument("--cold-start", action="store_true",
                        help="also time the cold start's imports with and without the "
                        "layer's bytecode")  # fmt: skip
    parser.add_argument("--strict", action="store_true",
                        help=f"every box within {TOLERANCE_PX} px: near ties of neighbouring "
                        "windows fail too (the default unless the shipped saliency model is int8)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    parser.add_argument("--summary", type=Path, default=WORK.parent / "arm64-check.json",
                        help="where the JSON summary is written too "
                        "(default build/arm64-check.json)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.root_only:
            with cache_lock():
                summary = {"ok": True, **prepare()}
        else:
            strict = args.strict or not shipped_saliency_is_int8()
            summary = check(args.function_zip, args.timeout, args.cold_start, strict)
    except Unavailable as e:
        print(json.dumps({"ok": False, "unavailable": str(e)}, indent=2))
        return 2
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if not args.root_only:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
