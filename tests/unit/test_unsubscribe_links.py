from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from chalicelib.domain.unsubscribe import (
    MAX_TOKEN_CHARS,
    BadToken,
    UnsubscribeClaims,
    UnsubscribeLinks,
    confirmation_page,
)

LINKS = UnsubscribeLinks("unit-test-unsubscribe-secret", "https://crm.example/")
CUSTOMER = "cus_01JDQ3Z6V8X9Y0A1B2C3D4E5F6"
CAMPAIGN = "cmp_01JDQ3Z6V8X9Y0A1B2C3D4E5F7"


def test_a_token_reads_back_as_its_claims():
    token = LINKS.token(CUSTOMER, CAMPAIGN)
    assert LINKS.read(token) == UnsubscribeClaims(customer_id=CUSTOMER, campaign_id=CAMPAIGN)
    assert len(token) < 200


def test_the_url_carries_the_token_unquoted():
    url = LINKS.url(CUSTOMER, CAMPAIGN)
    prefix = "https://crm.example/unsubscribe?token="
    assert url.startswith(prefix)
    token = url.removeprefix(prefix)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert LINKS.read(token).customer_id == CUSTOMER


def test_a_url_needs_a_base_url():
    links = UnsubscribeLinks("secret", "")
    with pytest.raises(ValueError, match="CRM_PUBLIC_BASE_URL"):
        links.url(CUSTOMER, CAMPAIGN)
    assert links.read(links.token(CUSTOMER, CAMPAIGN)).campaign_id == CAMPAIGN


def test_a_secret_is_required():
    with pytest.raises(ValueError, match="secret"):
        UnsubscribeLinks("", "https://crm.example")


def edited_payload(token: str) -> str:
    payload, signature = token.rsplit(".", 1)
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    forged = claims.replace(CUSTOMER.encode(), b"cus_01JDQ3Z6V8X9Y0A1B2C3D4E5F0")
    return base64.urlsafe_b64encode(forged).rstrip(b"=").decode() + "." + signature


def edited_signature(token: str) -> str:
    # Not the last character: its lowest bits are base64 padding, which decoding ignores.
    i = len(token) - 10
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(edited_payload(LINKS.token(CUSTOMER, CAMPAIGN)), id="edited payload"),
        pytest.param(edited_signature(LINKS.token(CUSTOMER, CAMPAIGN)), id="edited signature"),
        pytest.param(LINKS.token(CUSTOMER, CAMPAIGN)[:-5], id="truncated"),
        pytest.param(UnsubscribeLinks("another secret", "").token(CUSTOMER, CAMPAIGN), id="another secret"),
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("a.b", id="dots"),
        pytest.param("x" * (MAX_TOKEN_CHARS + 1), id="too long"),
        pytest.param(LINKS.token(CUSTOMER, CAMPAIGN) + "x" * MAX_TOKEN_CHARS, id="padded"),
        pytest.param("ä" + LINKS.token(CUSTOMER, CAMPAIGN), id="not ascii"),
        pytest.param(None, id="not a string"),
        pytest.param(b"bytes", id="bytes"),
    ],
)
def test_anything_but_a_token_it_signed_is_a_bad_token(token):
    with pytest.raises(BadToken):
        LINKS.read(token)


def test_a_token_for_another_purpose_signed_with_the_same_secret_is_refused():
    from itsdangerous import URLSafeSerializer

    other = URLSafeSerializer("unit-test-unsubscribe-secret", salt="cursor").dumps([CUSTOMER, CAMPAIGN])
    with pytest.raises(BadToken):
        LINKS.read(other)


def test_a_signed_token_of_the_wrong_shape_is_refused():
    serializer = LINKS._serializer
    for claims in ({"c": CUSTOMER}, [CUSTOMER], [CUSTOMER, CAMPAIGN, "x"], [CUSTOMER, 7], ["", CAMPAIGN]):
        with pytest.raises(BadToken):
            LINKS.read(serializer.dumps(claims))


# --- the confirmation page ---------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if data.strip():
            self.text.append(data.strip())

    def first(self, tag: str) -> dict[str, str | None]:
        return next(attrs for name, attrs in self.tags if name == tag)

    def has(self, tag: str) -> bool:
        return any(name == tag for name, _ in self.tags)


def test_the_question_page_holds_a_one_click_form():
    html = confirmation_page("en", done=False, action_url="https://crm.example/unsubscribe?token=abc")
    assert html.startswith("<!DOCTYPE html>")
    page = Page(html)
    assert page.first("html") == {"lang": "en"}
    assert page.first("meta") == {"charset": "utf-8"}
    assert page.has("title")
    assert page.first("form") == {"method": "post", "action": "https://crm.example/unsubscribe?token=abc"}
    assert page.first("input") == {"type": "hidden", "name": "List-Unsubscribe", "value": "One-Click"}
    assert page.first("button") == {"type": "submit"}
    assert "Unsubscribe from our marketing emails?" in page.text


def test_the_done_page_has_no_form():
    page = Page(confirmation_page("en", done=True, action_url="https://crm.example/unsubscribe?token=abc"))
    assert not page.has("form") and not page.has("input")
    assert "You are unsubscribed. You will not receive marketing emails from us any more." in page.text


@pytest.mark.parametrize("done", [False, True])
def test_the_page_has_no_scripts_and_nothing_from_elsewhere(done):
    page = Page(confirmation_page("sv", done=done, action_url="https://crm.example/unsubscribe?token=abc"))
    tags = {name for name, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "style", "object", "embed"}
    assert not any("src" in attrs or "href" in attrs for _, attrs in page.tags)


def test_the_action_url_is_escaped():
    url = 'https://crm.example/unsubscribe?token=a&b="><script>alert(1)</script>'
    html = confirmation_page("en", done=False, action_url=url)
    assert "<script>" not in html
    assert "&amp;b=&quot;&gt;&lt;script&gt;" in html
    assert Page(html).first("form")["action"] == url


@pytest.mark.parametrize(
    ("language", "lang", "words"),
    [
        ("sv", "sv", "avregistrera"),
        ("sv-FI", "sv", "avregistrera"),
        ("fi-FI", "fi", "perua"),
        ("sl", "sl", "odjaviti"),
        ("tl", "tl", "mag-unsubscribe"),
        ("fil-PH", "tl", "mag-unsubscribe"),
        ("de-DE", "en", "Unsubscribe from"),
        ("", "en", "Unsubscribe from"),
        ("not a locale", "en", "Unsubscribe from"),
    ],
)
def test_the_page_is_in_the_customers_language_else_english(language, lang, words):
    page = Page(confirmation_page(language, done=False, action_url="/unsubscribe?token=abc"))
    assert page.first("html") == {"lang": lang}
    assert any(words in text for text in page.text)


@pytest.mark.parametrize("language", ["en", "sv", "fi", "sl", "tl"])
def test_every_language_has_both_pages_and_they_differ(language):
    asking = Page(confirmation_page(language, done=False, action_url="/u"))
    done = Page(confirmation_page(language, done=True, action_url="/u"))
    assert asking.text != done.text
    assert all(asking.text) and all(done.text)
