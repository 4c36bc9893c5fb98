"""Security: the deployed API is not anonymous, IAM grants exactly what the code needs, no
endpoint fetches a URL, output keys stay under their prefix, dependencies are audited.

The template tests package the service offline (as tests/infra/test_serverless_package.py does)
with the default authorizer (IAM) and with JWT, and read the CloudFormation it writes.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.api.app import app
from functions.s3.trigger import output_base
from functions.settings import get_settings
from infra import audit_deps
from tests.tools import require

ROOT = Path(__file__).resolve().parents[2]
SERVERLESS = ROOT / "node_modules" / ".bin" / "serverless"
JWT_PARAMS = {"apiAuth": "jwt", "jwtIssuer": "https://issuer.example.com/pool",
              "jwtAudience": "autocrop-app"}  # fmt: skip


# --- the packaged template ----------------------------------------------------------------------


def package(out: Path, home: Path, params: dict[str, str] | None = None) -> dict[str, Any]:
    from tests.infra.test_serverless_package import offline_env

    args = [f"--param={k}={v}" for k, v in (params or {}).items()]
    done = subprocess.run(
        ["nice", "-n", "10", str(SERVERLESS), "package", "--stage", "dev", "--package", str(out),
         *args],
        cwd=ROOT, env=offline_env(home), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "cloudformation-template-update-stack.json").read_text())


@pytest.fixture(scope="module")
def templates(lambda_layer: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require(SERVERLESS.exists(), "needs the Serverless CLI: npm ci (infra/ci_setup.sh)")
    home = tmp_path_factory.mktemp("home")
    return {
        "iam": package(tmp_path_factory.mktemp("sls-iam"), home),
        "jwt_dir": (jwt_dir := tmp_path_factory.mktemp("sls-jwt")),
        "jwt": package(jwt_dir, home, JWT_PARAMS),
    }


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def routes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in of_type(template, "AWS::ApiGatewayV2::Route").values()
    }


#: The one route without IAM/JWT besides liveness: crop URLs, which carry their own signature.
CROP_URLS = "GET /v1/crops/{proxy+}"


def test_api_needs_iam_signatures_by_default(templates: dict[str, Any]):
    found = routes(templates["iam"])
    assert set(found) == {"GET /healthz", CROP_URLS, "$default"}
    assert found["$default"]["AuthorizationType"] == "AWS_IAM"  # every crop route
    assert "AuthorizationType" not in found["GET /healthz"]  # liveness
    assert "AuthorizationType" not in found[CROP_URLS]  # signed URLs: the HMAC is the authorization
    assert not of_type(templates["iam"], "AWS::ApiGatewayV2::Authorizer")
    # nothing else can invoke the function: no function URL, API Gateway only from this API
    assert not of_type(templates["iam"], "AWS::Lambda::Url")


def test_api_can_use_a_jwt_authorizer_instead(templates: dict[str, Any]):
    found = routes(templates["jwt"])
    assert set(found) == {"GET /healthz", CROP_URLS, "$default"}
    assert found["$default"]["AuthorizationType"] == "JWT"
    assert found["$default"]["AuthorizerId"] == {"Ref": "HttpApiAuthorizerJwt"}
    authorizer = of_type(templates["jwt"], "AWS::ApiGatewayV2::Authorizer")["HttpApiAuthorizerJwt"]
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    assert authorizer["Properties"]["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["Properties"]["JwtConfiguration"] == {
        "Issuer": JWT_PARAMS["jwtIssuer"], "Audience": [JWT_PARAMS["jwtAudience"]],
    }  # fmt: skip


def test_jwt_template_passes_cfn_lint(templates: dict[str, Any]):
    template = templates["jwt_dir"] / "cloudformation-template-update-stack.json"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--config-file", "infra/cfnlintrc.yaml",
         "--", str(template)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_is_no_anonymous_mode(tmp_path: Path):
    require(SERVERLESS.exists(), "needs the Serverless CLI: npm ci (infra/ci_setup.sh)")
    from tests.infra.test_serverless_package import offline_env

    done = subprocess.run(
        ["nice", "-n", "10", str(SERVERLESS), "package", "--stage", "dev", "--package",
         str(tmp_path / "out"), "--param=apiAuth=none"],
        cwd=ROOT, env=offline_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode != 0
    assert "authorizer" in (done.stdout + done.stderr)


# --- IAM: exactly what is needed ----------------------------------------------------------------

LOGS = ["logs:CreateLogStream", "logs:PutLogEvents"]
#: Every statement each role must have, and nothing more (Sids ignored, actions sorted).
EXPECTED_STATEMENTS: dict[str, list[dict[str, Any]]] = {
    # The API writes its own log stream and, for crop URLs, reads photos (HEAD and GET: both
    # s3:GetObject), their stored analysis and master (never writes any), the signing keys and
    # the origin secret.
    "ApiRole": [
        {"Effect": "Allow", "Action": LOGS, "Resource": {"Fn::Sub": "${ApiLogGroup.Arn}:*"}},
        {"Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::autocrop-dev-input/*"}},
        {"Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::autocrop-dev-input"}},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": {"Fn::Sub": "${OutputBucket.Arn}/crops/*"}},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": {"Fn::GetAtt": ["OutputBucket", "Arn"]}},
        {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": {"Fn::Sub":
         "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/autocrop/dev/url-signing-key"}},
        {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": {"Fn::Sub":
         "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/autocrop/dev/url-origin-secret"}},
        # overrides: write and delete the overrides files alone, and ask for the photo's regeneration
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:PutObject"],
         "Resource": {"Fn::Sub": "${OutputBucket.Arn}/crops/*/overrides.json"}},
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": {"Fn::GetAtt": ["RegenerateQueue", "Arn"]}},
    ],
    # Batch Operations: invoke the upload function, list the input (its generated
    # manifest), write its report; never read or change a photo itself.
    "BatchOperationsRole": [
        {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": {"Fn::GetAtt": ["UploadLambdaFunction", "Arn"]}},
        {"Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::autocrop-dev-input"}},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": {"Fn::Sub": "${OutputBucket.Arn}/batch-reports/*"}},
    ],
    "UploadRole": [
        {"Effect": "Allow", "Action": LOGS, "Resource": {"Fn::Sub": "${UploadLogGroup.Arn}:*"}},
        # read uploads (a version when the event names one)
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::autocrop-dev-input/*"}},
        # so a deleted upload reads as 404 (skipped), not 403 (retried)
        {"Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::autocrop-dev-input"}},
        # crops, sidecar, error record: write, read back (redelivery), delete (stale error)
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
         "Resource": {"Fn::Sub": "${OutputBucket.Arn}/crops/*"}},
        # so a missing sidecar reads as 404 (S3's check carries no s3:prefix: no condition)
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": {"Fn::GetAtt": ["OutputBucket", "Arn"]}},
        # the failure destination
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": {"Fn::GetAtt": ["FailureQueue", "Arn"]}},
        # regenerations: the event source mapping of their queue
        {"Effect": "Allow", "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
         "Resource": {"Fn::GetAtt": ["RegenerateQueue", "Arn"]}},
    ],
}  # fmt: skip
#: The S3 calls the upload function makes -> the IAM action each needs.
#: HeadObject has no action of its own: s3:GetObject authorises it (the photo's and an output's
#: ETag before a conditional write).
S3_CALL_ACTIONS = {"get_object": "s3:GetObject", "head_object": "s3:GetObject", "put_object": "s3:PutObject",
                   "delete_object": "s3:DeleteObject"}  # fmt: skip


def canonical(statement: dict[str, Any]) -> str:
    body = {k: v for k, v in statement.items() if k != "Sid"}
    action = body["Action"]
    body["Action"] = sorted([action] if isinstance(action, str) else action)
    return json.dumps(body, sort_keys=True)


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_iam_statements_are_exactly_the_least_needed(templates: dict[str, Any]):
    template = templates["iam"]
    roles = of_type(template, "AWS::IAM::Role")
    assert set(roles) == set(EXPECTED_STATEMENTS)
    for name, role in roles.items():
        got = sorted(canonical(s) for s in statements(role))
        assert got == sorted(canonical(s) for s in EXPECTED_STATEMENTS[name]), name
        props = role["Properties"]
        assert set(props) == {"AssumeRolePolicyDocument", "Policies"}  # no managed policies
        service = "batchoperations.s3.amazonaws.com" if name == "BatchOperationsRole" else "lambda.amazonaws.com"
        assert props["AssumeRolePolicyDocument"]["Statement"] == [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ]
    # no other identity or policy resources anywhere in the stack
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not {k for k in kinds if k.startswith("AWS::IAM::") and k != "AWS::IAM::Role"}
    functions = of_type(template, "AWS::Lambda::Function")
    assert {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()} == set(roles) - {"BatchOperationsRole"}
    # the JWT variant changes routes, never permissions
    jwt_roles = of_type(templates["jwt"], "AWS::IAM::Role")
    assert {k: sorted(map(canonical, statements(v))) for k, v in jwt_roles.items()} == {
        k: sorted(map(canonical, statements(v))) for k, v in roles.items()
    }


def test_every_s3_call_in_the_code_is_granted_and_nothing_more(templates: dict[str, Any]):
    """Both directions: what the upload function's modules call on S3 is allowed on the output
    prefix, and every S3 action granted is one the code (or a 404 instead of 403) needs."""
    source = "".join((ROOT / "functions" / "s3" / f).read_text() for f in ("trigger.py", "outputs.py", "batch.py"))
    calls = set(re.findall(r"\bs3\.(\w+)\(", source))
    assert calls == set(S3_CALL_ACTIONS), calls  # a new S3 call needs a look at the grants
    upload = statements(of_type(templates["iam"], "AWS::IAM::Role")["UploadRole"])
    granted = {a for s in upload for a in ([s["Action"]] if isinstance(s["Action"], str)
                                           else s["Action"]) if a.startswith("s3:")}  # fmt: skip
    assert granted == set(S3_CALL_ACTIONS.values()) | {"s3:GetObjectVersion", "s3:ListBucket"}
    for statement in upload:
        assert statement["Effect"] == "Allow"
        resource = json.dumps(statement["Resource"])
        assert resource != '"*"' and "*" not in [statement["Action"]]


def test_the_api_only_reads_s3_but_overrides(templates: dict[str, Any]):
    """Crop URLs read photos (a HEAD for the ETag, then a GET only where the master cannot
    serve), crops.json and masters: that code calls nothing else on S3, and both calls need
    only s3:GetObject (HeadObject has no action of its own). The overrides routes also write
    and delete, and only the overrides files are granted that."""
    source = (ROOT / "functions" / "api" / "crops.py").read_text()
    assert set(re.findall(r"\bs3\.(\w+)\(", source)) == {"get_object", "head_object"}
    overrides = (ROOT / "functions" / "api" / "photos.py").read_text()
    assert set(re.findall(r"\bs3\.(\w+)\(", overrides)) == {"get_object", "put_object", "delete_object"}
    api = statements(of_type(templates["iam"], "AWS::IAM::Role")["ApiRole"])
    actions = {a: st["Resource"] for st in api for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
    assert {a for a in actions if a.startswith("s3:")} == {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject"}
    for write in ("s3:PutObject", "s3:DeleteObject"):
        assert actions[write] == {"Fn::Sub": "${OutputBucket.Arn}/crops/*/overrides.json"}


def test_crop_urls_go_through_a_path_keyed_cdn_that_serves_nothing_else(templates: dict[str, Any]):
    template = templates["iam"]
    [dist] = of_type(template, "AWS::CloudFront::Distribution").values()
    config = dist["Properties"]["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    # the header the API requires of crop URL requests: the execute-api domain is no way around the CDN
    assert [h["HeaderName"].lower() for h in origin["OriginCustomHeaders"]] == ["x-autocrop-origin"]
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    [policy] = of_type(template, "AWS::CloudFront::CachePolicy").values()
    key = policy["Properties"]["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["HeadersConfig"] == {"HeaderBehavior": "none"}  # no Authorization reaches the API
    assert key["QueryStringsConfig"] == {"QueryStringBehavior": "none"}
    [function] = of_type(template, "AWS::CloudFront::Function").values()
    assert "'/v1/crops/'" in function["Properties"]["FunctionCode"]
    assert behaviour["FunctionAssociations"][0]["EventType"] == "viewer-request"
    env = of_type(template, "AWS::Lambda::Function")["ApiLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUTOCROP_URL_SIGNING_KEY_PARAMETER"] == "/autocrop/dev/url-signing-key"
    assert "AUTOCROP_URL_SIGNING_KEY" not in env  # the key itself never sits in the function's config
    assert "AUTOCROP_URL_ORIGIN_SECRET" not in env and env["AUTOCROP_URL_ORIGIN_SECRET_PARAMETER"]
    outputs = template["Outputs"]
    assert {"CropUrlDomain", "UploadFunctionArn", "BatchOperationsRoleArn"} <= set(outputs)


def test_invoke_permissions_are_scoped_to_their_source(templates: dict[str, Any]):
    permissions = of_type(templates["iam"], "AWS::Lambda::Permission")
    by_principal = {p["Properties"]["Principal"]: p["Properties"] for p in permissions.values()}
    assert set(by_principal) == {"s3.amazonaws.com", "apigateway.amazonaws.com"}
    s3 = by_principal["s3.amazonaws.com"]
    assert s3["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "autocrop-dev-input" in json.dumps(s3["SourceArn"])
    api = json.dumps(by_principal["apigateway.amazonaws.com"]["SourceArn"])
    assert '{"Ref": "HttpApi"}' in api


# --- no endpoint fetches a URL ------------------------------------------------------------------

NETWORK_MODULES = {"urllib.request", "urllib3", "http.client", "requests", "httpx", "aiohttp",
                   "socket", "pycurl", "ftplib", "smtplib", "telnetlib", "xmlrpc.client"}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_network_client_in_the_handlers_or_the_engine():
    files = [*sorted((ROOT / "functions").rglob("*.py")),
             *sorted((ROOT / "layers" / "autocrop").glob("*.py"))]  # fmt: skip
    assert len(files) > 10
    for path in files:
        modules = imported_modules(path)
        bad = {m for m in modules if m in NETWORK_MODULES or m.split(".")[0] in NETWORK_MODULES}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
        # The only AWS client: S3, in the upload function (its handler and its output store).
        # (and the API's crop URLs reading photos and their stored analysis, and its overrides
        # routes writing overrides files and sending regenerations)
        doors = ("s3/trigger.py", "s3/outputs.py", "s3/batch.py", "api/crops.py", "api/photos.py")
        if path.relative_to(ROOT).as_posix() not in {f"functions/{door}" for door in doors}:
            assert not {m for m in modules if m.split(".")[0] in ("boto3", "botocore")}, path


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def trap() -> Any:
    """A server on 127.0.0.1 that records any request: an SSRF would show up here."""
    _Recorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.png"
    server.shutdown()


def test_no_endpoint_fetches_a_url_it_is_given(trap: str):
    get_settings.cache_clear()
    client = TestClient(app, raise_server_exceptions=False)
    answers = [
        client.post(f"/v1/crop?url={trap}", content=b"x"),
        client.post("/v1/crop", files={"image": ("a.png", b"x")}, data={"url": trap}),
        client.post("/v1/crop", data={"url": trap, "image_url": trap}),  # a form is bytes too
        client.post("/v1/crop", content=trap.encode(), headers={"content-type": "text/uri-list"}),
        client.post("/v1/crop", json={"url": trap}),
        client.post("/v1/debug", content=trap.encode()),
        client.get(f"/v1/crop?url={trap}"),
    ]
    assert [a.status_code for a in answers] == [422, 422, 415, 415, 415, 415, 405]
    assert _Recorder.hits == []
    # and nothing in the API's contract takes a URL
    schema = json.dumps(client.get("/openapi.json").json()).lower()
    assert '"format": "uri"' not in schema and '"name": "url"' not in schema


@pytest.mark.parametrize(
    "path",
    ["/static/../../settings.py", "/static/%2e%2e/%2e%2e/settings.py", "/static/..%2fapp.py",
     "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd"],
)  # fmt: skip
def test_static_files_cannot_leave_their_folder(path: str):
    client = TestClient(app)
    response = client.get(path)
    assert response.status_code == 404
    assert b"BaseSettings" not in response.content and b"root:" not in response.content


# --- output keys stay under their prefix (fuzzed in tests/engine/test_fuzz.py) ------------------------


@pytest.mark.parametrize(
    ("key", "base"),
    [
        ("../../etc/passwd", "crops/%2E%2E/%2E%2E/etc/passwd"),
        ("/abs/./x.jpg", "crops/abs/x.jpg"),
        ("a/../../b.jpg", "crops/a/%2E%2E/%2E%2E/b.jpg"),
        (".../x.jpg", "crops/%2E%2E%2E/x.jpg"),
        ("%2E%2E/x.jpg", "crops/%252E%252E/x.jpg"),  # never the same as "../x.jpg"
        ("..\\..\\win.jpg", "crops/..\\..\\win.jpg"),  # S3 keys have no backslash separator
        ("//", "crops/%2E"),
    ],
)  # fmt: skip
def test_hostile_keys_stay_under_the_prefix(key: str, base: str):
    assert output_base(key, "crops") == base
    assert all(part not in ("", ".", "..") for part in base.split("/"))


# --- dependency audit ---------------------------------------------------------------------------


def test_audit_covers_exactly_what_the_layer_ships():
    pins = audit_deps.pinned_closure(audit_deps.layer_requirements())
    assert {"pillow", "opencv-python-headless", "ai-edge-litert", "numpy", "pillow-heif",
            "fastapi", "starlette", "mangum", "python-multipart", "aws-lambda-powertools",
            "pydantic"} <= set(pins)  # fmt: skip
    assert not {"boto3", "botocore", "uvicorn", "tensorflow-cpu", "moto", "pytest"} & set(pins)
    assert all(re.fullmatch(r"[\w.+!-]+", v) for v in pins.values())


REPORT = {"dependencies": [
    {"name": "pillow", "version": "12.0.0", "vulns": []},
    {"name": "numpy", "version": "2.2.6", "vulns": []},
]}  # fmt: skip


@pytest.mark.parametrize(
    ("returncode", "report", "stderr", "status", "says"),
    [
        (0, REPORT, "", 0, "no known vulnerabilities"),
        (1, {"dependencies": [{"name": "pillow", "version": "9.0.0", "vulns": [
            {"id": "PYSEC-2022-10", "fix_versions": ["9.0.1"]}]}]}, "", 1, "PYSEC-2022-10"),
        (0, {"dependencies": [{"name": "pillow", "skip_reason": "not found"}]}, "", 0,
         "NOT audited"),
        (1, None, "requests.exceptions.ConnectionError: Max retries exceeded", 0, "NOT audited"),
        (2, None, "error: unrecognized arguments", 1, "pip-audit failed"),
    ],
)  # fmt: skip
def test_audit_fails_on_vulnerabilities_and_only_warns_when_it_cannot_check(
    returncode: int, report: dict | None, stderr: str, status: int, says: str
):
    outcome = audit_deps.judge(returncode, json.dumps(report) if report else None, stderr)
    assert outcome.status == status
    assert says in outcome.message
