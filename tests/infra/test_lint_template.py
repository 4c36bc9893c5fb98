"""The README's lint command works after a failed `serverless deploy`, whose leftovers make
bare cfn-lint fail with E0003 (its template glob matches nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


from tests.infra.test_serverless_package import SERVERLESS, offline_env
from tests.tools import require

ROOT = Path(__file__).resolve().parents[2]


def test_lint_packages_what_a_failed_deploy_left_out(lambda_layer: dict, tmp_path: Path) -> None:
    require(SERVERLESS.exists(), "needs the Serverless CLI: npm ci (infra/ci_setup.sh)")
    home = tmp_path / "home"
    home.mkdir()
    # What `serverless deploy` leaves in .serverless/ when it stops for lack of credentials:
    # it packages anew, and writes the update template only after reaching AWS.
    checkout = tmp_path / "checkout"
    leftovers = checkout / ".serverless"
    leftovers.mkdir(parents=True)
    (leftovers / "autocrop.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (leftovers / "cloudformation-template-create-stack.json").write_text('{"Resources": {}}')
    (tmp_path / "checkout" / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "cfnlintrc.yaml", tmp_path / "checkout" / "infra")
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    bare = subprocess.run([cfn_lint, "--config-file", "infra/cfnlintrc.yaml"], cwd=tmp_path / "checkout",
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bare.returncode != 0 and "E0003" in bare.stdout + bare.stderr  # the reported failure

    # The same leftovers in a folder of another name: osls writes a --package folder named
    # .serverless to the service's own .serverless/, which this test must not touch.
    package_dir = leftovers.rename(checkout / "sls-dev")
    env = {**offline_env(home), "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-m", "infra.lint_template", "--package-dir", str(package_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "holds only autocrop.zip, cloudformation-template-create-stack.json" in shown
    assert "packaging it now" in shown and "cfn-lint found nothing" in shown
    assert (package_dir / "cloudformation-template-update-stack.json").is_file()
