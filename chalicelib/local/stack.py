"""The local stack's infrastructure: a moto server and the CloudFormation template deployed to it.

Nothing here imports `app` or the store: the environment has to be complete before they are
imported (`chalicelib.config` reads it once), and moto is imported only when a server starts.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
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


def local_environment(aws_port: int, api_port: int, stage: str = "local") -> dict[str, str]:
    """Everything the app needs to run against the moto server on `aws_port`.

    `api_port` is not used by the app itself; it is part of the signature so every caller
    describes the whole stack, and it is exported as CRM_API_URL for tools that need it.
    """
    region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return {
        **stage_environment(stage),
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": f"http://{HOST}:{aws_port}",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "CRM_API_URL": f"http://{HOST}:{api_port}",
    }


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


def deploy(stage: str = "local", *, timeout: float = 60.0) -> dict[str, str]:
    """Create the stack `crm-{stage}` from infra/resources.json and return its outputs.

    boto3 finds moto through AWS_ENDPOINT_URL: call `apply_environment` first.
    """
    import boto3

    cloudformation = boto3.client("cloudformation")
    name = f"crm-{stage}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
    )
    deadline = time.monotonic() + timeout
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            verify_sender()
            return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
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
