"""The local stack's infrastructure: a moto server, optionally DynamoDB Local for the tables, and
infra/resources.json deployed to them.

DynamoDB backends: "local" (DynamoDB Local, AWS's emulator: the tables and their streams) with
moto for everything else, or "moto" for everything. Nothing here imports `app` or the store: the
environment has to be complete before they are imported (`chalicelib.config` reads it once), and
moto is imported only when a server starts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalice.config import Config
    from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "resources.json"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
DEFAULT_REGION = "eu-north-1"
HOST = "127.0.0.1"
# moto's fake credentials: nothing local may ever sign a request for a real account.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables from the caller's shell that would send boto3 elsewhere or mix in real credentials.
_FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class PortInUse(Exception):
    """A port the local stack needs is taken; `str()` is a one-line message for the user."""

    def __init__(self, port: int, variable: str) -> None:
        super().__init__(f"port {port} is in use (set {variable} to use another)")
        self.port = port
        self.variable = variable


def chalice_project_config() -> dict[str, Any]:
    return json.loads(CHALICE_CONFIG.read_text(encoding="utf-8"))


def stage_environment(stage: str = "local") -> dict[str, str]:
    """The stage's environment variables, as Chalice would set them in Lambda."""
    project = chalice_project_config()
    if stage not in project.get("stages", {}):
        raise ValueError(f"stage {stage!r} is not in {CHALICE_CONFIG.relative_to(ROOT)}")
    return {
        **project.get("environment_variables", {}),
        **project["stages"][stage].get("environment_variables", {}),
    }


def local_environment(
    aws_port: int, api_port: int, stage: str = "local", dynamodb_url: str | None = None
) -> dict[str, str]:
    """Everything the app needs to run against the moto server on `aws_port`, and against
    DynamoDB Local at `dynamodb_url` for DynamoDB and its streams when one is given.

    `api_port` is exported as CRM_API_URL for tools that need it, and as CRM_PUBLIC_BASE_URL,
    on which the email-confirmation links are built.
    """
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return {
        **dynamodb_environment(dynamodb_url),
        **stage_environment(stage),
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": f"http://{HOST}:{aws_port}",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "CRM_API_URL": f"http://{HOST}:{api_port}",
        # Confirmation links in emails point at the API that serves them.
        "CRM_PUBLIC_BASE_URL": f"http://{HOST}:{api_port}",
    }


def dynamodb_environment(dynamodb_url: str | None) -> dict[str, str]:
    """boto3's per-service endpoints (PynamoDB uses them too): DynamoDB and DynamoDB Streams
    go to `dynamodb_url`, every other service to AWS_ENDPOINT_URL."""
    if not dynamodb_url:
        return {}
    return {"AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url}


def choose_dynamodb(requested: str | None = None) -> tuple[str, str | None]:
    """("local" | "moto", why not local): `CRM_LOCAL_DYNAMODB` = "local" | "moto" | unset
    (DynamoDB Local when Java 17 and npm or an installed copy are there, moto otherwise).
    Raises ValueError for another value, or for "local" where it cannot run."""
    from chalicelib.local import dynamodb_local

    requested = (requested if requested is not None else os.environ.get("CRM_LOCAL_DYNAMODB", "")).strip()
    if requested not in ("", "local", "moto"):
        raise ValueError(f"CRM_LOCAL_DYNAMODB={requested!r}: use 'local', 'moto' or leave it unset")
    if requested == "moto":
        return "moto", "CRM_LOCAL_DYNAMODB=moto"
    reason = dynamodb_local.why_unavailable()
    if reason is not None and requested == "local":
        raise ValueError(f"CRM_LOCAL_DYNAMODB=local, but {reason}")
    return ("moto", reason) if reason else ("local", None)


def apply_environment(env: dict[str, str]) -> None:
    """Put `env` into os.environ, dropping shell settings that could reach a real account."""
    for name in list(os.environ):
        if name in _FOREIGN_AWS_VARIABLES or name.startswith("AWS_ENDPOINT_URL_"):
            del os.environ[name]
    os.environ.update(env)


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option as the servers that will bind it, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(ports: dict[str, int]) -> None:
    """Raise PortInUse for the first taken port; `ports` maps the variable that sets it to it."""
    for variable, port in ports.items():
        if not port_is_free(port):
            raise PortInUse(port, variable)


def start_moto(port: int) -> ThreadedMotoServer:
    from moto.server import ThreadedMotoServer

    # ThreadedMotoServer.start() would wait forever for a server that failed to bind.
    if not port_is_free(port):
        raise PortInUse(port, "CRM_AWS_PORT")
    # werkzeug would otherwise print one line per AWS call.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    return server


def load_template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text(encoding="utf-8"))


def deploy(
    stage: str = "local",
    *,
    dynamodb: str = "moto",
    before_tables: Callable[[], Any] | None = None,
    timeout: float = 60.0,
) -> dict[str, str]:
    """Create the stack `crm-{stage}` from infra/resources.json and return its outputs.

    With `dynamodb="local"` moto's CloudFormation deploys everything but the tables, then
    `before_tables()` is called (to wait for DynamoDB Local, which starts meanwhile) and the
    tables are created on DynamoDB Local. boto3 finds moto through AWS_ENDPOINT_URL and
    DynamoDB Local through AWS_ENDPOINT_URL_DYNAMODB: call `apply_environment` first.
    """
    import boto3

    from chalicelib.local import tables

    if dynamodb not in ("moto", "local"):
        raise ValueError(f"unknown DynamoDB backend {dynamodb!r}")
    template = load_template()
    parameters = {"Stage": stage}
    # moto's CloudFormation skips the queue policy S3 needs in the cloud (local/buckets.py).
    warnings.filterwarnings("ignore", message="Tried to parse AWS::SQS::QueuePolicy")
    logging.getLogger("moto").addFilter(lambda record: "AWS::SQS::QueuePolicy" not in record.getMessage())
    outputs = _create_stack(
        f"crm-{stage}",
        tables.without_tables(template) if dynamodb == "local" else template,
        parameters,
        timeout,
    )
    verify_sender()
    from chalicelib.local.buckets import configure_buckets

    configure_buckets(template, stage)
    if dynamodb == "local":
        if before_tables is not None:
            before_tables()
        outputs.update(tables.create_tables(boto3.client("dynamodb"), template, parameters))
    return outputs


def _create_stack(name: str, template: dict, parameters: dict[str, str], timeout: float) -> dict[str, str]:
    import boto3

    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if not status.endswith("_IN_PROGRESS"):
            reason = stack.get("StackStatusReason", "no reason given")
            raise RuntimeError(f"stack {name} is {status}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack {name} still {status} after {timeout:.0f} s")
        time.sleep(0.2)


def verify_sender() -> None:
    """SES sends only from verified identities; in the cloud the sender is verified once by
    hand (a domain or address you own), locally moto verifies it here."""
    import boto3

    from chalicelib.config import Settings

    boto3.client("ses").verify_email_identity(EmailAddress=Settings.from_env().mail_from)


def chalice_config(app: Any, stage: str = "local") -> Config:
    """The Config `chalice local` builds for a stage, around an app that is already imported."""
    from chalice.config import Config

    return Config(
        chalice_stage=stage,
        user_provided_params={"chalice_app": app, "project_dir": str(ROOT)},
        config_from_disk=chalice_project_config(),
        default_params={"project_dir": str(ROOT), "api_gateway_stage": "api", "autogen_policy": True},
    )
