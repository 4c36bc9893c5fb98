"""Build the Lambda layer: runtime dependencies + the autocrop engine + its models.

    python infra/build_layer.py                 # python3.13 on arm64 (the deployed target)
    python infra/build_layer.py --arch x86_64
    python infra/build_layer.py --if-stale      # only when the layer's inputs changed (npm run package)

Writes build/layer-<arch>.zip (contents under python/, which Lambda puts on sys.path from
/opt/python) and build/layer-<arch>.json (sizes), prints unzipped and zipped sizes, and
exits 1 when function code plus layer would exceed Lambda's 250 MB unzipped limit.

Wheels are downloaded once into build/wheels/<arch>-py<version>/ and installed from there offline on
later runs, so a rebuild needs no network. The zip is deterministic (sorted entries, fixed
timestamps): the same inputs give the same bytes, so a deploy does not publish a new layer
version for nothing.

Each build also records a digest of its inputs in build/layer-<arch>.inputs.json (the engine's
files, this script, the runtime requirements, the pinned versions, the target) with the zip's
own digest; `--if-stale` rebuilds only when the zip is missing, was changed, or the inputs differ.

Bytecode: where the emulated arm64 Debian root of `python -m infra.arm64_check` exists (its
python3.13 is the runtime's interpreter, run through qemu-user), every .py of the layer is
compiled there into __pycache__/*.cpython-313.pyc as unchecked-hash pycs (valid without
timestamps, so they stay valid in the zip and Lambda's cold start loads them instead of
compiling every module again). Compiled files are cached by content, so only changed sources
are compiled again. Without that root the layer ships sources only (and says so).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE_DIR = ROOT / "layers" / "autocrop"
FUNCTIONS_DIR = ROOT / "functions"
BUILD_DIR = ROOT / "build"
BUILD_SCRIPT = Path(__file__).resolve()

#: Lambda's runtime (python3.13: the newest that an arm64 Debian root can match, Debian 13
#: "trixie" ships python3.13, so the layer runs under emulation before it ships).
#: `--python-version` exists so tests can build a layer the machine running them can import
#: (an x86_64 build for its own Python) and prove the stripped layer works.
PYTHON_VERSION = "3.13"
#: Lambda's python3.13 runtime is Amazon Linux 2023 (glibc 2.34); pip expands each
#: manylinux tag down to older glibc versions too.
PLATFORMS = {
    "arm64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64"),
}
#: ELF e_machine of each architecture, to prove no wheel of the wrong kind slipped in.
ELF_MACHINE = {"arm64": 0xB7, "x86_64": 0x3E}

#: Lambda's hard limit for function code plus all its layers, unzipped (bytes).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
#: The handlers' extra needs these too, but the runtime provides boto3 and the Lambda
#: never runs a web server, so they stay out of the layer.
SERVE_EXCLUDED = {"boto3", "botocore", "uvicorn"}

#: What a Lambda never needs. Directory names are removed wherever they appear.
STRIP_DIRS = {"__pycache__", "tests"}
STRIP_SUFFIXES = (".pyi", ".pyc")
#: Package-specific dead weight (paths relative to python/).
STRIP_GLOBS = (
    "ai_edge_litert/*WebGpu*",  # GPU accelerator: Lambda has no GPU
    "ai_edge_litert/tools",  # model analysers and benchmark helpers
    "ai_edge_litert/vendors",  # vendor NPU dispatch libraries
    "cv2/data/*.xml",  # Haar cascades: faces come from YuNet
    # onnxruntime's C API library: its Python module carries the runtime itself and never loads it
    "onnxruntime/capi/libonnxruntime.so.*",
    "onnxruntime/transformers",  # model optimisers, quantization and conversion tools
    "onnxruntime/quantization",
    "onnxruntime/tools",
    # numpy's build-time parts: the Fortran wrapper generator, C headers, static libraries and
    # Cython declarations (nothing imports them at run time)
    "numpy/f2py",
    "numpy/_core/include",
    "numpy/_core/lib",
    "numpy/*.pxd",
    # numpy's random number generators: nothing in the layer draws random numbers (`import
    # numpy` does not import them; the stripped layer serves a crop in
    # tests/infra/test_layer_build.py and the arm64 check runs both handlers on it)
    "numpy/random",
)


@dataclass(frozen=True)
class LayerReport:
    """Sizes of one layer build, in bytes."""

    arch: str
    zip_path: str
    layer_unzipped: int
    layer_zipped: int
    function_unzipped: int
    limit: int
    #: What compiled the layer's bytecode (Interpreter.identity), None: sources only.
    bytecode: str | None = None
    bytecode_modules: int = 0

    @property
    def total_unzipped(self) -> int:
        return self.layer_unzipped + self.function_unzipped

    @property
    def headroom(self) -> int:
        return self.limit - self.total_unzipped

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "total_unzipped": self.total_unzipped, "headroom": self.headroom}


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The engine's dependencies plus the handlers' (`serve` extra) minus what Lambda has."""
    project = tomllib.loads(pyproject.read_text())["project"]
    serve = [req for req in project["optional-dependencies"]["serve"] if _requirement_name(req) not in SERVE_EXCLUDED]
    return [*project["dependencies"], *serve]


def _requirement_name(requirement: str) -> str:
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in "-_."):
            return requirement[:i].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def _pip_platform_args(arch: str, python_version: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for platform in PLATFORMS[arch]:
        args += ["--platform", platform]
    return args


def installed_pins() -> list[str]:
    """Every distribution installed here (but autocrop) at its version, the one tests ran on."""
    return sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"] and dist.metadata["Name"].lower() != "autocrop"
        }
    )


def write_constraints(path: Path, pins: list[str] | None = None) -> Path:
    """Pin every transitive dependency to the version installed here, the one tests ran on."""
    path.write_text("\n".join(installed_pins() if pins is None else pins) + "\n")
    return path


def install_dependencies(arch: str, python_version: str, target: Path, wheels: Path, constraints: Path) -> None:
    """pip-install the requirements for Lambda's platform into `target`, from the wheel cache."""
    requirements = runtime_requirements()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    platform = [*_pip_platform_args(arch, python_version), "--constraint", str(constraints)]
    offline = [
        *pip, "install", "--target", str(target), "--no-compile", "--no-warn-conflicts",
        "--no-index", "--find-links", str(wheels), *platform, *requirements,
    ]  # fmt: skip
    wheels.mkdir(parents=True, exist_ok=True)
    if subprocess.run(offline, capture_output=True).returncode == 0:
        return
    print(f"downloading wheels for {arch} into {_rel(wheels)}", flush=True)
    download = [*pip, "download", "--dest", str(wheels), *platform, *requirements]
    _run_quietly(download)
    shutil.rmtree(target, ignore_errors=True)
    _run_quietly(offline)


def _run_quietly(command: list[str]) -> None:
    """Run pip, showing its output only when it fails."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"pip failed ({done.returncode}): {' '.join(command[3:5])}")


#: What copy_engine leaves out of the engine (and so what does not make the layer stale).
ENGINE_IGNORED = ("__pycache__", "*.pyc", "tests")


def copy_engine(target: Path) -> None:
    """The autocrop package with its models, without caches or tests."""
    shutil.copytree(ENGINE_DIR, target / "autocrop", ignore=shutil.ignore_patterns(*ENGINE_IGNORED))


def engine_files(engine_dir: Path = ENGINE_DIR) -> list[Path]:
    """The files copy_engine copies, sorted."""
    ignore = shutil.ignore_patterns(*ENGINE_IGNORED)
    files: list[Path] = []

    def walk(directory: Path) -> None:
        names = sorted(p.name for p in directory.iterdir())
        skipped = ignore(str(directory), names)
        for name in names:
            if name in skipped:
                continue
            path = directory / name
            if path.is_dir():
                walk(path)
            elif path.is_file():
                files.append(path)

    walk(engine_dir)
    return files


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def inputs_digest(
    arch: str,
    python_version: str,
    requirements: list[str],
    pins: list[str],
    engine_dir: Path = ENGINE_DIR,
    build_script: Path = BUILD_SCRIPT,
    bytecode: str | None = None,
) -> str:
    """sha256 over everything the layer zip is made from: the target, the requirements and
    their pins, this build script, the engine's files (names and contents) and what compiles
    the bytecode (`bytecode`: an Interpreter.identity, None for a layer of sources only)."""
    digest = hashlib.sha256()

    def add(label: str, value: str) -> None:
        digest.update(f"{label}\0{value}\n".encode())

    add("arch", arch)
    add("python", python_version)
    add("bytecode", bytecode or "none")
    for requirement in requirements:
        add("requirement", requirement)
    for pin in pins:
        add("pin", pin)
    add("build.py", _file_sha256(build_script))
    for path in engine_files(engine_dir):
        add(f"engine/{path.relative_to(engine_dir).as_posix()}", _file_sha256(path))
    return digest.hexdigest()


def inputs_record_path(build_dir: Path, arch: str) -> Path:
    return build_dir / f"layer-{arch}.inputs.json"


def record_inputs(build_dir: Path, arch: str, inputs: str) -> Path:
    """Write layer-<arch>.inputs.json beside the zip: the inputs' and the zip's digests."""
    zip_path = build_dir / f"layer-{arch}.zip"
    record = {"inputs_sha256": inputs, "zip_sha256": _file_sha256(zip_path)}
    path = inputs_record_path(build_dir, arch)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def stale_reason(build_dir: Path, arch: str, inputs: str) -> str | None:
    """Why build_dir's layer-<arch>.zip needs building for inputs with digest `inputs`,
    or None when it is up to date."""
    zip_path = build_dir / f"layer-{arch}.zip"
    if not zip_path.is_file():
        return f"{_rel(zip_path)} is missing"
    if not (build_dir / f"layer-{arch}.json").is_file():
        return f"{_rel(build_dir / f'layer-{arch}.json')} is missing"
    try:
        record = json.loads(inputs_record_path(build_dir, arch).read_text())
    except (OSError, ValueError):
        return "no record of the inputs it was built from"
    if not isinstance(record, dict) or record.get("inputs_sha256") != inputs:
        return "its inputs changed (engine, build script, requirements or pinned versions)"
    if record.get("zip_sha256") != _file_sha256(zip_path):
        return f"{_rel(zip_path)} is not the zip that was built"
    return None


def strip(target: Path) -> int:
    """Remove what a Lambda never loads; returns the bytes removed."""
    doomed: list[Path] = []
    for pattern in STRIP_GLOBS:
        doomed += target.glob(pattern)
    for path in target.rglob("*"):
        if path.is_dir() and path.name in STRIP_DIRS or path.is_file() and path.name.endswith(STRIP_SUFFIXES):
            doomed.append(path)
    removed = 0
    for path in doomed:
        if not path.exists():  # already gone with a parent directory
            continue
        removed += tree_size(path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def check_architecture(target: Path, arch: str) -> None:
    """Fail if any shared library is built for another CPU than `arch`."""
    wrong = []
    for path in target.rglob("*.so*"):
        if not path.is_file():
            continue
        with path.open("rb") as f:
            header = f.read(20)
        if header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") != ELF_MACHINE[arch]:
            wrong.append(_rel(path))
    if wrong:
        raise SystemExit(f"{len(wrong)} shared libraries are not {arch}: {wrong[:5]}")


# ---------------------------------------------------------------------------------------------
# Bytecode, compiled by the runtime's own interpreter in an emulated arm64 root

#: The Debian release whose python3.X is the runtime's version, for the arm64 root that
#: infra/arm64_check.py makes (mmdebstrap + qemu-user-static).
DEBIAN_SUITES = {"3.13": "trixie"}
#: Where the kernel runs arm64 binaries through qemu-user (infra/arm64_check.py registers it).
BINFMT_AARCH64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
#: Where Lambda unpacks the layer: the file names tracebacks show.
LAYER_MOUNT = "/opt/python"
#: The CPU qemu-user emulates (QEMU_CPU): Lambda's arm64 is Graviton2 (Neoverse N1). Also
#: the fast choice: qemu's default "max" has pointer authentication, which Debian's binaries
#: use and qemu emulates slowly (imports took 6x as long).
EMULATED_CPU = "neoverse-n1"


@dataclass(frozen=True)
class Interpreter:
    """The runtime's interpreter inside an arm64 root (run with chroot)."""

    root: Path
    python: str  # inside the root
    identity: str  # everything its pycs depend on, e.g. "python3.13 3.13.5-2 (Debian trixie arm64)"


def arm64_cache() -> Path:
    """infra/arm64_check.py's cache (the root, runtime wheels) and the bytecode cache:
    $AUTOCROP_ARM64_CACHE, by default ~/.cache/autocrop-arm64."""
    configured = os.environ.get("AUTOCROP_ARM64_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "autocrop-arm64"


def arm64_root(python_version: str = PYTHON_VERSION, cache: Path | None = None) -> Path | None:
    """Where the arm64 root for `python_version` lives (None: no Debian release matches)."""
    suite = DEBIAN_SUITES.get(python_version)
    return (cache or arm64_cache()) / f"root-{suite}" if suite else None


def root_record_path(root: Path) -> Path:
    """Written by infra/arm64_check.py once the root is complete (recipe, versions, timings)."""
    return root.with_name(root.name + ".json")


def debian_package_version(root: Path, package: str) -> str | None:
    """The version dpkg installed in `root` of `package`, or None."""
    try:
        status = (root / "var" / "lib" / "dpkg" / "status").read_text()
    except OSError:
        return None
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version")
    return None


def emulation_ready() -> bool:
    """Whether this machine runs arm64 binaries: natively, or through registered qemu-user."""
    if os.uname().machine in ("aarch64", "arm64"):
        return True
    try:
        return BINFMT_AARCH64.read_text().splitlines()[0] == "enabled"
    except (OSError, IndexError):
        return False


def find_interpreter(arch: str, python_version: str, root: Path | None = None) -> tuple[Interpreter | None, str]:
    """The runtime's interpreter to compile the layer's bytecode with, and what was found:
    (None, why not) when there is none to use here."""
    if arch != "arm64":
        return None, f"no {arch} root (only arm64 roots are made)"
    root = root or arm64_root(python_version)
    if root is None:
        return None, f"no Debian release ships python{python_version} (DEBIAN_SUITES)"
    python = f"/usr/bin/python{python_version}"
    package = debian_package_version(root, f"python{python_version}-minimal")
    complete = root_record_path(root).is_file() and (root / python.lstrip("/")).is_file()
    if not complete or not package:
        return None, f"no arm64 root at {root} (python -m infra.arm64_check makes one)"
    if os.geteuid() != 0:
        return None, f"compiling in {root} needs root (chroot)"
    if not emulation_ready():
        return None, "arm64 emulation is not registered (python -m infra.arm64_check --root-only)"
    suite = root.name.removeprefix("root-")
    return Interpreter(root, python, f"python{python_version} {package} (Debian {suite} arm64)"), ""


#: Runs inside the root: compiles names.json's sources (under src/) to pyc/<name>c,
#: unchecked-hash, named as Lambda will see them; prints the names that did not compile.
COMPILE_SCRIPT = """
import json, multiprocessing, os, py_compile, sys
from concurrent.futures import ProcessPoolExecutor
work, mount = sys.argv[1:3]
names = json.load(open(os.path.join(work, "names.json")))
def compile_one(name):
    try:
        py_compile.compile(os.path.join(work, "src", name),
                           cfile=os.path.join(work, "pyc", name + "c"),
                           dfile=mount + "/" + name, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        return name
ctx = multiprocessing.get_context("fork")
with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=ctx) as pool:
    print(json.dumps([n for n in pool.map(compile_one, names, chunksize=16) if n]))
"""


def compile_bytecode(target: Path, interpreter: Interpreter, cache: Path | None = None) -> int:
    """Put an unchecked-hash pyc beside every .py under `target` (in __pycache__, tagged for
    the interpreter's version), compiled by `interpreter` in its root; returns how many.

    Each pyc is cached under <cache>/pyc by (interpreter, file name, source), so only new or
    changed sources are compiled (under emulation that is what takes time)."""
    cache = (cache or arm64_cache()) / "pyc"
    version = interpreter.python.removeprefix("/usr/bin/python")
    tag = "cpython-" + version.replace(".", "")
    planned: list[tuple[Path, str, Path]] = []
    for source in sorted(target.rglob("*.py")):
        name = source.relative_to(target).as_posix()
        key = hashlib.sha256(f"{interpreter.identity}\0{LAYER_MOUNT}/{name}\0".encode())
        key.update(source.read_bytes())
        digest = key.hexdigest()
        planned.append((source, name, cache / digest[:2] / digest))
    todo = [
        (s, n, c)
        for s, n, c in planned
        if not c.with_suffix(".pyc").is_file() and not c.with_suffix(".failed").is_file()
    ]
    if todo:
        print(f"compiling {len(todo)} modules with {interpreter.identity}", flush=True)
        work_inside = f"/tmp/autocrop-bytecode-{os.getpid()}"
        work = interpreter.root / work_inside.lstrip("/")
        shutil.rmtree(work, ignore_errors=True)
        try:
            for source, name, _ in todo:
                (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, work / "src" / name)
            (work / "names.json").write_text(json.dumps([name for _, name, _ in todo]))
            chroot = shutil.which("chroot", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
            done = subprocess.run(
                [chroot or "chroot", str(interpreter.root), interpreter.python, "-I", "-c",
                 COMPILE_SCRIPT, work_inside, LAYER_MOUNT],
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "QEMU_CPU": EMULATED_CPU},
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
                raise SystemExit(f"compiling the layer's bytecode in {interpreter.root} failed")
            failed = set(json.loads(done.stdout.strip().splitlines()[-1]))
            for _, name, cached in todo:
                cached.parent.mkdir(parents=True, exist_ok=True)
                if name in failed:  # not Python {version} source (left as it is, not retried)
                    cached.with_suffix(".failed").write_text(name + "\n")
                else:
                    tmp = cached.with_suffix(".tmp")
                    shutil.copyfile(work / "pyc" / (name + "c"), tmp)
                    tmp.replace(cached.with_suffix(".pyc"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    compiled = 0
    for source, _, cached in planned:
        if cached.with_suffix(".pyc").is_file():
            pycache = source.parent / "__pycache__"
            pycache.mkdir(exist_ok=True)
            shutil.copyfile(cached.with_suffix(".pyc"), pycache / f"{source.stem}.{tag}.pyc")
            compiled += 1
    return compiled


def write_zip(source: Path, zip_path: Path) -> None:
    """Deterministic zip of `source`'s contents (sorted, fixed timestamps and modes)."""
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), (1980, 1, 1, 0, 0, 0))
            executable = path.stat().st_mode & 0o111
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(zip_path)


def tree_size(path: Path) -> int:
    """Bytes in the files under `path` (or of `path` itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def function_size() -> int:
    """Unzipped size of the function package (serverless.yml packages functions/ only)."""
    return sum(p.stat().st_size for p in FUNCTIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def build_layer(
    arch: str = "arm64",
    build_dir: Path = BUILD_DIR,
    wheels: Path | None = None,
    python_version: str = PYTHON_VERSION,
    bytecode: bool | Path = True,
) -> LayerReport:
    """Build <build_dir>/layer-<arch>.zip and return its sizes (wheels cached in `wheels`,
    by default <build_dir>/wheels/<arch>-py<python_version>).

    `bytecode`: True compiles the bytecode where the arm64 root is usable here (see
    find_interpreter), False never, a Path: with the root there (an error when unusable)."""
    if arch not in PLATFORMS:
        raise SystemExit(f"unknown architecture {arch!r}; choose from {sorted(PLATFORMS)}")
    interpreter = resolve_bytecode(arch, python_version, bytecode)
    staging = build_dir / f"layer-{arch}"
    target = staging / "python"
    pins = installed_pins()
    # Taken before anything is copied: an edit made during the build makes the next one rebuild.
    identity = interpreter.identity if interpreter else None
    inputs = inputs_digest(arch, python_version, runtime_requirements(), pins, bytecode=identity)
    inputs_record_path(build_dir, arch).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    target.mkdir(parents=True)
    constraints = write_constraints(build_dir / f"layer-{arch}-constraints.txt", pins)
    wheels = wheels or build_dir / "wheels" / f"{arch}-py{python_version}"
    install_dependencies(arch, python_version, target, wheels, constraints)
    copy_engine(target)
    removed = strip(target)
    check_architecture(target, arch)
    modules = compile_bytecode(target, interpreter) if interpreter else 0
    zip_path = build_dir / f"layer-{arch}.zip"
    write_zip(staging, zip_path)
    report = LayerReport(
        arch=arch,
        zip_path=_rel(zip_path),
        layer_unzipped=tree_size(staging),
        layer_zipped=zip_path.stat().st_size,
        function_unzipped=function_size(),
        limit=LAMBDA_UNZIPPED_LIMIT,
        bytecode=identity,
        bytecode_modules=modules,
    )
    (build_dir / f"layer-{arch}.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    record_inputs(build_dir, arch, inputs)
    print(f"stripped {_mb(removed)}")
    return report


def resolve_bytecode(arch: str, python_version: str, bytecode: bool | Path) -> Interpreter | None:
    """The interpreter that compiles this build's bytecode (build_layer's `bytecode`)."""
    if bytecode is False:
        return None
    root = bytecode if isinstance(bytecode, Path) else None
    interpreter, why = find_interpreter(arch, python_version, root)
    if interpreter is None and root is not None:
        raise SystemExit(f"--bytecode-root {root}: {why}")
    if interpreter is None:
        print(f"bytecode: none, sources only ({why})", flush=True)
    return interpreter


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="arm64")
    parser.add_argument("--python-version", default=PYTHON_VERSION, help=argparse.SUPPRESS)
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="build only when the zip is missing or its inputs changed since it was built",
    )
    compiling = parser.add_mutually_exclusive_group()
    compiling.add_argument(
        "--bytecode-root", type=Path, metavar="ROOT",
        help="compile the bytecode in this arm64 root (default: the one infra/arm64_check.py "
        "keeps in ~/.cache/autocrop-arm64, when it is there)",
    )  # fmt: skip
    compiling.add_argument("--no-bytecode", action="store_true", help="ship sources only")
    args = parser.parse_args(argv)
    bytecode: bool | Path = False if args.no_bytecode else (args.bytecode_root or True)

    if args.if_stale:
        interpreter = resolve_bytecode(args.arch, args.python_version, bytecode)
        inputs = inputs_digest(
            args.arch, args.python_version, runtime_requirements(), installed_pins(),
            bytecode=interpreter.identity if interpreter else None,
        )  # fmt: skip
        reason = stale_reason(args.build_dir, args.arch, inputs)
        if reason is None:
            return check_up_to_date(args.build_dir, args.arch)
        print(f"layer {args.arch}: building, {reason}", flush=True)
        bytecode = interpreter.root if interpreter else False
    return print_report(build_layer(args.arch, args.build_dir, None, args.python_version, bytecode))


def check_up_to_date(build_dir: Path, arch: str) -> int:
    """An up-to-date layer still has to fit beside today's function code."""
    saved = json.loads((build_dir / f"layer-{arch}.json").read_text())
    report = LayerReport(
        arch=arch,
        zip_path=saved["zip_path"],
        layer_unzipped=saved["layer_unzipped"],
        layer_zipped=saved["layer_zipped"],
        function_unzipped=function_size(),
        limit=LAMBDA_UNZIPPED_LIMIT,
        bytecode=saved.get("bytecode"),
        bytecode_modules=saved.get("bytecode_modules", 0),
    )
    print(f"layer {arch}: {report.zip_path} is up to date ({_mb(report.layer_zipped)} zipped)")
    if report.headroom < 0:
        return print_report(report)
    return 0


def print_report(report: LayerReport) -> int:
    """Print the sizes; 1 when function plus layer exceed Lambda's unzipped limit."""
    print(f"layer {report.arch}: {report.zip_path}")
    print(f"  layer unzipped     {_mb(report.layer_unzipped):>10}")
    print(f"  layer zipped       {_mb(report.layer_zipped):>10}")
    print(f"  function unzipped  {_mb(report.function_unzipped):>10}")
    print(f"  total unzipped     {_mb(report.total_unzipped):>10} of {_mb(report.limit)} allowed")
    if report.bytecode:
        print(f"  bytecode           {report.bytecode_modules:>6} modules, by {report.bytecode}")
    else:
        print("  bytecode               none (sources only: compiled at each cold start)")
    if report.headroom < 0:
        print(f"FAIL: {_mb(-report.headroom)} over Lambda's unzipped limit", file=sys.stderr)
        return 1
    print(f"  headroom           {_mb(report.headroom):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
