"""`serverless package` (osls, pinned in package.json) runs offline, and cfn-lint passes on
the CloudFormation template it writes; the template says what the deployment promises."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"

require(SERVERLESS.exists(), "needs the Serverless CLI: npm ci (infra/ci_setup.sh)", module=True)


def offline_env(home: Path) -> dict[str, str]:
    """No AWS credentials, config or endpoint: any AWS call during packaging would fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_", "SERVERLESS_"))}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "none"),
        SLS_TELEMETRY_DISABLED="1",
        SLS_NOTIFICATIONS_MODE="off",
    )
    return env


def package(stage: str, out: Path, home: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["nice", "-n", "10", str(SERVERLESS), "package", "--stage", stage, "--package", str(out)],
        cwd=ROOT, env=offline_env(home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    return json.loads((out / "cloudformation-template-update-stack.json").read_text())


@pytest.fixture(scope="module")
def packaged(lambda_layer: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sls-dev")
    return out, package("dev", out, tmp_path_factory.mktemp("home"))


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_passes(packaged: tuple[Path, dict]):
    out, _ = packaged
    template = out / "cloudformation-template-update-stack.json"
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(cfn_lint), "--config-file", "infra/cfnlintrc.yaml", "--", str(template)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_functions_run_python313_on_arm64_with_the_layer(packaged: tuple[Path, dict]):
    _, template = packaged
    functions = resources(template, "AWS::Lambda::Function")
    assert set(functions) == {"ApiLambdaFunction", "UploadLambdaFunction"}
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["Layers"] == [{"Ref": "AutocropLambdaLayer"}]
        env = props["Environment"]["Variables"]
        assert env["AUTOCROP_OUTPUT_BUCKET"] == {"Ref": "OutputBucket"}
        assert env["AUTOCROP_OUTPUT_PREFIX"] == "crops"
        assert env["AUTOCROP_RATIOS"] == "1:1,16:9,4:5,9:16"
        assert env["AUTOCROP_SIZES"] == "" and str(env["AUTOCROP_NO_UPSCALE"]).lower() == "false"
        assert str(env["AUTOCROP_URL_MASTER"]).lower() == "true"  # both write / read it
    assert functions["ApiLambdaFunction"]["Properties"]["Handler"] == "functions/api/app.handler"
    assert (
        functions["UploadLambdaFunction"]["Properties"]["Handler"] == "functions/s3/trigger.handler"
    )

    layer = template["Resources"]["AutocropLambdaLayer"]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_function_package_is_only_the_handlers(packaged: tuple[Path, dict]):
    out, _ = packaged
    names = zipfile.ZipFile(out / "autocrop.zip").namelist()
    assert "functions/api/app.py" in names and "functions/s3/trigger.py" in names
    assert "functions/api/static/index.html" in names
    assert all(n.startswith("functions/") and "__pycache__" not in n for n in names)


def test_http_api_routes_everything_to_the_api(packaged: tuple[Path, dict]):
    _, template = packaged
    assert template["Resources"]["HttpApi"]["Properties"]["ProtocolType"] == "HTTP"
    route = template["Resources"]["HttpApiRouteDefault"]["Properties"]
    assert route["RouteKey"] == "$default"
    integration = template["Resources"]["HttpApiIntegrationApi"]["Properties"]
    assert integration["PayloadFormatVersion"] == "2.0"


def test_buckets_are_encrypted_private_and_wired(packaged: tuple[Path, dict]):
    _, template = packaged
    buckets = {
        k: v
        for k, v in resources(template, "AWS::S3::Bucket").items()
        if k != "ServerlessDeploymentBucket"
    }
    assert set(buckets) == {"S3BucketInputBucket", "OutputBucket"}
    for bucket in buckets.values():
        props = bucket["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert len(props["PublicAccessBlockConfiguration"]) == 4
    notifications = buckets["S3BucketInputBucket"]["Properties"]["NotificationConfiguration"]
    assert notifications["LambdaConfigurations"] == [
        {"Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": ["UploadLambdaFunction", "Arn"]}}
    ]
    assert "NotificationConfiguration" not in buckets["OutputBucket"]["Properties"]  # no loop


def test_overrides_routes_are_authorised_and_regenerations_reach_the_upload_function(packaged: tuple[Path, dict]):
    """/v1/photos/... has no route of its own: it falls to $default, behind the authorizer, as
    the crop API does; only /healthz and crop URLs are open."""
    _, template = packaged
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources(template, "AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == {"GET /healthz", "GET /v1/crops/{proxy+}", "$default"}
    assert routes["$default"]["AuthorizationType"] == "AWS_IAM"
    assert "AuthorizationType" not in routes["GET /v1/crops/{proxy+}"] or routes["GET /v1/crops/{proxy+}"]["AuthorizationType"] == "NONE"
    [mapping] = resources(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["RegenerateQueue", "Arn"]}
    env = template["Resources"]["ApiLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUTOCROP_REGENERATE_QUEUE_URL"] == {"Ref": "RegenerateQueue"}
    queue = template["Resources"]["RegenerateQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["VisibilityTimeout"] >= 6 * 120


def test_failures_go_to_an_encrypted_queue(packaged: tuple[Path, dict]):
    _, template = packaged
    config = template["Resources"]["UploadLambdaEvConf"]["Properties"]
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["FailureQueue", "Arn"]
    }
    assert config["MaximumRetryAttempts"] == 2
    assert template["Resources"]["FailureQueue"]["Properties"]["SqsManagedSseEnabled"] is True


def statements(role: dict) -> list[dict]:
    return [
        s
        for policy in role["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
    ]


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else value


def test_iam_is_least_privilege(packaged: tuple[Path, dict]):
    _, template = packaged
    roles = resources(template, "AWS::IAM::Role")
    # one per function (no shared default role) and the one S3 Batch Operations assumes
    assert set(roles) == {"ApiRole", "UploadRole", "BatchOperationsRole"}
    api = statements(roles["ApiRole"])
    assert {a for s in api for a in actions(s)} == {
        "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:ListBucket", "ssm:GetParameter",
        "s3:PutObject", "s3:DeleteObject", "sqs:SendMessage",
    }  # reads (crop URLs: photos, crops.json, masters, keys, origin secret), and overrides
    api_writes = [s for s in api if {"s3:PutObject", "s3:DeleteObject", "sqs:SendMessage"} & set(actions(s))]
    assert {s["Sid"]: (actions(s), s["Resource"]) for s in api_writes} == {
        "PhotoOverrides": (["s3:PutObject", "s3:DeleteObject"], {"Fn::Sub": "${OutputBucket.Arn}/crops/*/overrides.json"}),
        "RegeneratePhotos": (["sqs:SendMessage"], {"Fn::GetAtt": ["RegenerateQueue", "Arn"]}),
    }  # only the overrides files, and the regeneration queue

    upload = {s.get("Sid"): s for s in statements(roles["UploadRole"])}
    for statement in upload.values():
        assert statement["Resource"] != "*" and "*" not in actions(statement)
    assert actions(upload["ReadInput"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert upload["ReadInput"]["Resource"]["Fn::Sub"].endswith(":s3:::autocrop-dev-input/*")
    assert "s3:PutObject" in actions(upload["WriteOutput"])
    assert upload["WriteOutput"]["Resource"] == {"Fn::Sub": "${OutputBucket.Arn}/crops/*"}
    # no s3:prefix condition: S3's 404-or-403 check for a missing key carries no prefix
    assert "Condition" not in upload["MissingOutputIs404Not403"]
    assert actions(upload["FailureDestination"]) == ["sqs:SendMessage"]
    assert actions(upload["ConsumeRegenerations"]) == ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    assert upload["ConsumeRegenerations"]["Resource"] == {"Fn::GetAtt": ["RegenerateQueue", "Arn"]}
    writes = [s for s in upload.values() if {"s3:PutObject", "s3:DeleteObject"} & set(actions(s))]
    assert writes == [upload["WriteOutput"]]  # nothing can write to the input bucket
    batch = {s.get("Sid"): s for s in statements(roles["BatchOperationsRole"])}
    assert actions(batch["InvokeUpload"]) == ["lambda:InvokeFunction"]
    assert batch["InvokeUpload"]["Resource"] == {"Fn::GetAtt": ["UploadLambdaFunction", "Arn"]}
    assert batch["WriteReport"]["Resource"] == {"Fn::Sub": "${OutputBucket.Arn}/batch-reports/*"}


def test_per_stage_settings(lambda_layer: dict, tmp_path: Path):
    template = package("prod", tmp_path / "out", tmp_path)
    upload = template["Resources"]["UploadLambdaFunction"]["Properties"]
    assert upload["MemorySize"] == 3008
    assert upload["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "WARNING"
    assert upload["Environment"]["Variables"]["AUTOCROP_INPUT_BUCKET"] == "autocrop-prod-input"
    shutil.rmtree(tmp_path / "out")


# --- the edge in front of the API ------------------------------------------------------------------


def test_the_edge_function_is_the_tested_file_and_refuses_other_spellings(packaged: tuple[Path, dict]):
    """The CloudFront Function deployed is infra/edge/crop_urls.js as it is (tests/infra/test_crop_url_edge.py
    runs that file), and the packaged code itself refuses another spelling of a crop URL."""
    from tests.infra.test_crop_url_edge import run_edge, url

    _, template = packaged
    [function] = resources(template, "AWS::CloudFront::Function").values()
    code = function["Properties"]["FunctionCode"]
    signed = url("2019/summer/beach.jpg")
    others = [signed.replace("beach", "be%61ch"), signed.replace("2019/summer", "2019%2fsummer")]
    assert run_edge(code, [signed, *others, "/docs"]) == [None, 400, 400, 404]
    assert code == (ROOT / "infra" / "edge" / "crop_urls.js").read_text()
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"


def test_the_cdn_sends_the_origin_secret_the_api_requires(packaged: tuple[Path, dict]):
    _, template = packaged
    [dist] = resources(template, "AWS::CloudFront::Distribution").values()
    [origin] = dist["Properties"]["DistributionConfig"]["Origins"]
    [header] = origin.get("OriginCustomHeaders") or [{}]
    assert header.get("HeaderName", "").lower() == "x-autocrop-origin"
    from functions.api.crops import ORIGIN_HEADER

    assert ORIGIN_HEADER == "x-autocrop-origin"  # the one the API checks
    # resolved by CloudFormation at deploy time from a String parameter (never in the template)
    assert header["HeaderValue"] == "{{resolve:ssm:/autocrop/dev/url-origin-secret}}"
    env = template["Resources"]["ApiLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUTOCROP_URL_ORIGIN_SECRET_PARAMETER"] == "/autocrop/dev/url-origin-secret"
    assert "AUTOCROP_URL_ORIGIN_SECRET" not in env


def test_the_http_api_is_throttled(packaged: tuple[Path, dict]):
    _, template = packaged
    [stage] = resources(template, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert (settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")) == (50, 100)
    assert stage["Properties"]["StageName"] == "$default"


def test_reserved_concurrency_is_unset_by_default_and_set_by_parameters(packaged: tuple[Path, dict], lambda_layer: dict,
                                                                        tmp_path: Path):  # fmt: skip
    """A new account's quota (10) cannot reserve any, so the default reserves none; a deployer
    with the quota reserves some for each function, so a backfill cannot starve the API."""
    _, template = packaged
    for fn in resources(template, "AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in fn["Properties"]
    done = subprocess.run(
        ["nice", "-n", "10", str(SERVERLESS), "package", "--stage", "dev", "--package", str(tmp_path / "out"),
         "--param=apiReservedConcurrency=20", "--param=uploadReservedConcurrency=5",
         "--param=apiThrottleRate=7", "--param=apiThrottleBurst=9"],
        cwd=ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    reserved = json.loads((tmp_path / "out" / "cloudformation-template-update-stack.json").read_text())
    functions = resources(reserved, "AWS::Lambda::Function")
    assert {name: fn["Properties"].get("ReservedConcurrentExecutions") for name, fn in functions.items()} == {
        "ApiLambdaFunction": 20, "UploadLambdaFunction": 5}  # fmt: skip
    [stage] = resources(reserved, "AWS::ApiGatewayV2::Stage").values()
    # (a --param arrives as text, which CloudFormation reads as the number)
    assert float(stage["Properties"]["DefaultRouteSettings"]["ThrottlingRateLimit"]) == 7
    assert int(stage["Properties"]["DefaultRouteSettings"]["ThrottlingBurstLimit"]) == 9
    shutil.rmtree(tmp_path / "out")
