"""The unsubscribe link of a marketing message, and the page it opens.

The token names the customer and the campaign, signed by itsdangerous under a salt of its own,
and it does not expire: an unsubscribe link in an old message must keep working (RFC 8058
one-click). It withdraws marketing consent and nothing else, so
holding one grants nothing worth stealing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape

from itsdangerous import BadData, URLSafeSerializer

from chalicelib.domain.contact import LANGUAGE_ALIASES, ContactError, language_of

_SALT = "unsubscribe"
# A token is about 130 characters (two ids and a SHA-256 signature); far longer is not one.
MAX_TOKEN_CHARS = 512
_MAX_ID_CHARS = 100


class BadToken(ValueError):
    """Not an unsubscribe token this service signed (malformed, edited or another key's)."""


@dataclass(frozen=True)
class UnsubscribeClaims:
    customer_id: str
    campaign_id: str


class UnsubscribeLinks:
    """Signs and reads unsubscribe tokens; `url(...)` is the link a campaign message carries."""

    def __init__(self, secret: str, base_url: str) -> None:
        if not secret:
            raise ValueError("unsubscribe links need a secret")
        self._serializer = URLSafeSerializer(
            secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._base_url = base_url.rstrip("/")

    def token(self, customer_id: str, campaign_id: str) -> str:
        return self._serializer.dumps([customer_id, campaign_id])

    def url(self, customer_id: str, campaign_id: str) -> str:
        if not self._base_url:
            raise ValueError("unsubscribe links need a public base URL (CRM_PUBLIC_BASE_URL)")
        # The token is base64url with dots: nothing in it needs quoting in a query.
        return f"{self._base_url}/unsubscribe?token={self.token(customer_id, campaign_id)}"

    def read(self, token: str) -> UnsubscribeClaims:
        """The token's claims once its signature holds; BadToken otherwise."""
        if not isinstance(token, str) or not token.isascii() or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise BadToken("not an unsubscribe token")
        try:
            claims = self._serializer.loads(token)
        except BadData:
            raise BadToken("not an unsubscribe token") from None
        if not (
            isinstance(claims, list)
            and len(claims) == 2
            and all(isinstance(claim, str) and 0 < len(claim) <= _MAX_ID_CHARS for claim in claims)
        ):
            raise BadToken("not an unsubscribe token")
        return UnsubscribeClaims(customer_id=claims[0], campaign_id=claims[1])


@dataclass(frozen=True)
class _Page:
    ask_title: str
    ask: str
    button: str
    done_title: str
    done: str


_PAGES = {
    "en": _Page(
        ask_title="Unsubscribe",
        ask="Unsubscribe from our marketing emails?",
        button="Unsubscribe",
        done_title="Unsubscribed",
        done="You are unsubscribed. You will not receive marketing emails from us any more.",
    ),
    "sv": _Page(
        ask_title="Avregistrering",
        ask="Vill du avregistrera dig från vår marknadsföring via e-post?",
        button="Avregistrera mig",
        done_title="Du är avregistrerad",
        done="Du är avregistrerad. Du kommer inte längre att få marknadsföring via e-post från oss.",
    ),
    "fi": _Page(
        ask_title="Tilauksen peruminen",
        ask="Haluatko perua markkinointisähköpostiemme tilauksen?",
        button="Peru tilaus",
        done_title="Tilaus on peruttu",
        done="Tilauksesi on peruttu. Et saa meiltä enää markkinointisähköposteja.",
    ),
    "sl": _Page(
        ask_title="Odjava",
        ask="Se želite odjaviti od prejemanja naših trženjskih e-poštnih sporočil?",
        button="Odjavi me",
        done_title="Odjava je uspela",
        done="Odjavljeni ste. Od nas ne boste več prejemali trženjskih e-poštnih sporočil.",
    ),
    "tl": _Page(
        ask_title="Pag-unsubscribe",
        ask="Gusto po ba ninyong mag-unsubscribe sa aming mga marketing email?",
        button="Mag-unsubscribe",
        done_title="Naka-unsubscribe na po kayo",
        done=(
            "Naka-unsubscribe na po kayo. Hindi na po kayo makakatanggap ng mga marketing email mula sa amin."
        ),
    ),
}
PAGE_LANGUAGES = tuple(_PAGES)


def page_language(locale: str) -> str:
    """The language of the confirmation page for a locale or language: one of PAGE_LANGUAGES."""
    try:
        language = language_of(locale)
    except ContactError:
        return "en"
    language = LANGUAGE_ALIASES.get(language, language)
    return language if language in _PAGES else "en"


def confirmation_page(language: str, *, done: bool, action_url: str) -> str:
    """The page an unsubscribe link opens: a question and a one-click form posting to
    `action_url` (RFC 8058's body), or, once done, the confirmation. No scripts, no styles
    or images from elsewhere: it is shown to whoever follows the link."""
    lang = page_language(language)
    page = _PAGES[lang]
    title = page.done_title if done else page.ask_title
    if done:
        content = f"<h1>{escape(page.done_title)}</h1>\n<p>{escape(page.done)}</p>"
    else:
        content = (
            f"<h1>{escape(page.ask)}</h1>\n"
            f'<form method="post" action="{escape(action_url, quote=True)}">\n'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
            f'<button type="submit">{escape(page.button)}</button>\n'
            "</form>"
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n"
        "</head>\n"
        "<body>\n"
        "<main>\n"
        f"{content}\n"
        "</main>\n"
        "</body>\n"
        "</html>\n"
    )
