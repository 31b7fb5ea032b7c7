"""The API explorer: Swagger UI at GET /docs, loading this API's document from /openapi.json.

Swagger UI's files are vendored in swagger_ui/ (the npm package swagger-ui-dist, checked against
the registry's integrity by `python -m infra.swagger_ui`), and the page names each with its SRI
hash from swagger_ui/manifest.json, so a browser runs only the pinned files. They are read on
the first request for them, never at import: every Lambda function imports app.py.

All URLs are relative to /docs, so the page works behind a gateway's stage prefix (/api/docs).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path

from chalice import Blueprint, Response

from chalicelib.api.http import Call, api_route

bp = Blueprint(__name__)

ASSETS_DIR = Path(__file__).resolve().parent / "swagger_ui"
MEDIA_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}
HTML = "text/html"

# `url` is relative to the page: /openapi.json, or /api/openapi.json behind a stage.
INIT_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true,
  persistAuthorization: false
});"""


@functools.cache
def manifest() -> dict:
    return json.loads((ASSETS_DIR / "manifest.json").read_text())


@functools.cache
def asset(name: str) -> str:
    return (ASSETS_DIR / name).read_text(encoding="utf-8")


def _version_token(integrity: str) -> str:
    # A cache key in the URL: a new file gets a new URL, so the old one can be cached forever.
    return integrity.split("-", 1)[1][:16].replace("+", "-").replace("/", "_")


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def content_security_policy() -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' '{_script_hash(INIT_SCRIPT)}'",
            # No 'unsafe-inline': Swagger UI styles elements through the DOM, which CSP allows
            # (a Chromium test checks the page logs no violation).
            "style-src 'self'",
            "img-src 'self' data:",
            # The document and "Try it out" requests: this API only.
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@functools.cache
def page() -> str:
    files = manifest()["files"]

    def ref(name: str) -> str:
        url = f"docs/{name}?v={_version_token(files[name])}"
        return f'{url}" integrity="{files[name]}" crossorigin="anonymous'

    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CRM API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{ref("swagger-ui.css")}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ref("swagger-ui-bundle.js")}"></script>
<script>{INIT_SCRIPT}</script>
</body>
</html>
"""


_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@api_route(
    bp,
    "/docs",
    "GET",
    summary="The API explorer (Swagger UI) for this document",
    roles=(),
    response={HTML: {"type": "string"}},
    headers=("Content-Security-Policy", "Cache-Control"),
)
def docs(call: Call):
    return Response(
        body=page(),
        status_code=200,
        headers={
            "Content-Type": f"{HTML}; charset=utf-8",
            "Content-Security-Policy": content_security_policy(),
            "Cache-Control": "no-cache",
            **_COMMON,
        },
    )


def _asset_route(name: str) -> None:
    media_type = MEDIA_TYPES[name]

    def view(call: Call):
        return Response(
            body=asset(name),
            status_code=200,
            headers={
                "Content-Type": f"{media_type}; charset=utf-8",
                "Cache-Control": "public, max-age=31536000, immutable",
                **_COMMON,
            },
        )

    view.__name__ = "docs_" + name.replace("-", "_").replace(".", "_")
    api_route(
        bp,
        f"/docs/{name}",
        "GET",
        summary=f"Swagger UI's {name} (the version in swagger_ui/manifest.json)",
        roles=(),
        response={media_type: {"type": "string"}},
        headers=("Cache-Control",),
    )(view)


for _name in MEDIA_TYPES:
    _asset_route(_name)
