"""The local stack's printed commands run as printed in a fresh shell: no AWS configuration,
no AWS variables, the venv not activated."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from infra.local_stack import create_stack, usage_lines


def fresh_shell_env(home: Path) -> dict[str, str]:
    """This machine's environment less every AWS setting: what a new user's shell has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AUTOCROP_"))}
    # No ~/.aws either, and no instance metadata to fall back on.
    env["AWS_CONFIG_FILE"] = str(home / "no-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def printed(lines: list[str], label: str) -> str:
    (line,) = [line for line in lines if line.startswith(label)]
    return line[len(label):].strip()


def run_shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed here")
def test_printed_aws_commands_work_in_a_fresh_shell(aws_env: str, tmp_path: Path) -> None:
    stack = create_stack(aws_env, input_bucket="fresh-in", output_bucket="fresh-out", queue="fresh-q")
    lines = usage_lines(stack, "http://127.0.0.1:8000", "key")
    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "photo.jpg")
    env = fresh_shell_env(tmp_path)

    upload = printed(lines, "upload a photo:")
    assert upload.startswith("AWS_ACCESS_KEY_ID=") and " aws --endpoint-url " in upload
    # The shell really is fresh: the bare aws command finds no credentials there.
    bare = upload[upload.index("aws --endpoint-url"):]
    refused = run_shell(bare, tmp_path, env)
    assert refused.returncode != 0 and "credentials" in refused.stderr.lower(), refused.stderr

    done = run_shell(upload, tmp_path, env)
    assert done.returncode == 0, done.stderr
    body = stack.client("s3").get_object(Bucket="fresh-in", Key="photo.jpg")["Body"].read()
    assert Image.open(io.BytesIO(body)).size == (64, 48)

    stack.client("s3").put_object(Bucket="fresh-out", Key="crops/photo.jpg/crops.json", Body=b"{}")
    listing = run_shell(printed(lines, "see its crops:"), tmp_path, env)
    assert listing.returncode == 0, listing.stderr
    assert "crops/photo.jpg/crops.json" in listing.stdout


def test_printed_backfill_command_crops_in_a_fresh_shell(aws_env: str, tmp_path: Path) -> None:
    """No AUTOCROP_OUTPUT_BUCKET in a new shell: the printed command names the bucket, and
    names the project's Python by a path that runs without the venv activated."""
    stack = create_stack(aws_env, input_bucket="fill-in", output_bucket="fill-out", queue="fill-q")
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (30, 120, 200)).save(buffer, "PNG")
    stack.client("s3").put_object(Bucket="fill-in", Key="new/one.png", Body=buffer.getvalue())
    command = printed(usage_lines(stack, "http://127.0.0.1:8000", "key"),
                      "crop photos already in the bucket:")  # fmt: skip
    assert shlex.split(command)[1:4] == [sys.executable, "-m", "infra.cli"] and " backfill " in command
    done = run_shell(command.replace("PREFIX", "new/") + " --no-progress", tmp_path,
                     fresh_shell_env(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 cropped" in done.stdout
    keys = [o["Key"] for o in stack.client("s3").list_objects_v2(Bucket="fill-out")["Contents"]]
    assert "crops/new/one.png/crops.json" in keys
