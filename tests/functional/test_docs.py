"""GET /docs: Swagger UI, loading this API's document, from vendored files pinned by hash."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "chalicelib" / "api" / "swagger_ui"


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _references(html: str) -> list[tuple[str, str]]:
    return re.findall(r'(?:src|href)="(docs/[^"]+)" integrity="([^"]+)" crossorigin="anonymous"', html)


def test_docs_is_swagger_ui_loading_this_document_without_a_token(api):
    reply = api.get("/docs", auth=False)
    assert reply.status == 200
    assert reply.content_type == "text/html; charset=utf-8"
    html = reply.body.decode()
    assert '<div id="swagger-ui"></div>' in html
    assert 'url: "openapi.json"' in html  # relative: behind a stage prefix it is /api/openapi.json
    assert {url.split("?")[0] for url, _ in _references(html)} == {
        "docs/swagger-ui-bundle.js",
        "docs/swagger-ui.css",
    }


def test_the_page_may_run_only_its_own_scripts_and_connect_only_to_this_api(api):
    reply = api.get("/docs", auth=False)
    policy = dict(
        directive.strip().split(" ", 1) for directive in reply.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in policy["script-src"] and "unsafe-inline" not in policy["script-src"]
    # The one inline script (SwaggerUIBundle's settings) is allowed by its hash.
    inline = re.findall(r"<script>(.*?)</script>", reply.body.decode(), re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["cache-control"] == "no-cache"


def test_each_asset_is_served_without_a_token_with_the_integrity_the_page_names(api):
    html = api.get("/docs", auth=False).body.decode()
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    for url, integrity in _references(html):
        name = url.split("?")[0].removeprefix("docs/")
        reply = api.get("/" + url, auth=False)
        assert reply.status == 200, url
        assert (
            reply.content_type.split(";")[0]
            == {"js": "text/javascript", "css": "text/css"}[name.split(".")[-1]]
        )
        assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
        # What a browser checks before it runs the file: the bytes served are the pinned ones.
        assert _sri(reply.body) == integrity == manifest["files"][name]


def test_the_vendored_files_are_the_pinned_swagger_ui_release():
    from infra.swagger_ui import DEFAULT_VERSION, LICENCES, SERVED, sri

    manifest = json.loads((ASSETS / "manifest.json").read_text())
    assert (manifest["package"], manifest["version"]) == ("swagger-ui-dist", DEFAULT_VERSION)
    assert manifest["tarball_integrity"].startswith("sha512-")
    assert set(manifest["files"]) == set(SERVED)
    for name in SERVED:
        assert sri((ASSETS / name).read_bytes()) == manifest["files"][name], name
    assert f'"{DEFAULT_VERSION}"' in (ASSETS / "swagger-ui-bundle.js").read_text()
    assert all((ASSETS / name).is_file() for name in LICENCES)


def test_only_the_pages_assets_are_served(api, chalice_app):
    served = {path for path in chalice_app.routes if path.startswith("/docs")}
    assert served == {"/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"}
    assert api.get("/docs/manifest.json", auth=False).status != 200
