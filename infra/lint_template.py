"""Lint the CloudFormation template `serverless package` writes, packaging first when it is not there.

    .venv/bin/python -m infra.lint_template                 # .serverless/ (npm run package's)
    .venv/bin/python -m infra.lint_template --package-dir DIR --stage prod

cfn-lint alone (`cfn-lint --config-file infra/cfnlintrc.yaml`) reads
.serverless/cloudformation-template-update-stack.json and, when that file is missing, fails
with a bare `E0003 ... could not be processed by glob.glob`. It is missing on a fresh clone,
and after any failed `serverless deploy` (no AWS credentials, say): deploy packages into
.serverless/ anew and writes the update template only once it reaches AWS, so it leaves the
function zip and the create-stack template behind. Here a missing template is packaged
(offline, as `npm run package` does), saying so, and then linted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "cloudformation-template-update-stack.json"
CONFIG = ROOT / "infra" / "cfnlintrc.yaml"
SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"
#: The layer serverless.yml packages (infra/build_layer.sh builds it).
LAYER_ZIP = ROOT / "build" / "layer-arm64.zip"


def package(out: Path, stage: str) -> int:
    """`serverless package` (offline) into `out`, building the layer zip first only if there is
    none: the template, not the layer, is what is linted (`npm run package` rebuilds a stale one)."""
    if not SERVERLESS.exists():
        print("lint_template: the Serverless CLI is not installed: run `npm ci` (infra/ci_setup.sh does)",
              file=sys.stderr)  # fmt: skip
        return 2
    if not LAYER_ZIP.is_file():
        built = subprocess.run(["sh", str(ROOT / "infra" / "build_layer.sh")], cwd=ROOT)
        if built.returncode != 0:
            return built.returncode
    return subprocess.run([str(SERVERLESS), "package", "--stage", stage, "--package", str(out)], cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lint_template", description=__doc__.split("\n")[0])
    parser.add_argument("--package-dir", type=Path, default=ROOT / ".serverless",
                        help="where the packaged template is, or goes (default: .serverless)")  # fmt: skip
    parser.add_argument("--stage", default="dev", help="the stage to package when packaging (default: dev)")
    args = parser.parse_args(argv)
    template = args.package_dir.resolve() / TEMPLATE
    if not template.is_file():
        left = sorted(p.name for p in args.package_dir.iterdir()) if args.package_dir.is_dir() else []
        why = (f"{args.package_dir} holds only {', '.join(left)}: what a failed `serverless deploy` leaves"
               if left else f"{args.package_dir} is not there yet")  # fmt: skip
        print(f"lint_template: no {TEMPLATE} ({why}); packaging it now (offline, ~1 min)", flush=True)
        status = package(args.package_dir.resolve(), args.stage)
        if status != 0 or not template.is_file():
            print(f"lint_template: packaging failed (exit {status}): its output above says why", file=sys.stderr)
            return status or 1
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run([str(cfn_lint) if cfn_lint.exists() else "cfn-lint", "--config-file", str(CONFIG),
                           "--", str(template)], cwd=ROOT)  # fmt: skip
    print(
        f"lint_template: {template.relative_to(ROOT) if template.is_relative_to(ROOT) else template}: "
        + ("cfn-lint found nothing" if done.returncode == 0 else f"cfn-lint exit {done.returncode}, findings above")
    )
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
