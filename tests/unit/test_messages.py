from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib.domain.messages import (
    CONFIRMATION_TEMPLATE_DIR,
    PLACEHOLDERS,
    SUPPORTED_LANGUAGES,
    TEMPLATE_DIR,
    Message,
    TemplateError,
    acknowledgement,
    email_confirmation,
    load_templates,
    placeholders_of,
    response_time,
)

HOURS = timedelta(hours=1)
DAYS = timedelta(days=1)
TEMPLATE_FILES = sorted(TEMPLATE_DIR.glob("*.json"))


def ack(locale: str, **overrides) -> Message:
    values = {
        "name": "Anna Berg",
        "preferred_name": "Annie",
        "case_ref": "CASE-0042",
        "complaint_subject": "Late delivery",
        "first_response": 4 * HOURS,
    }
    values.update(overrides)
    return acknowledgement(locale, **values)


# --- response time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "duration", "expected"),
    [
        ("sv", 1 * HOURS, "inom 1 timme"),
        ("sv", 4 * HOURS, "inom 4 timmar"),
        ("sv", 2 * DAYS, "inom 2 dagar"),
        ("fi", 1 * HOURS, "1 tunnin kuluessa"),
        ("fi", 24 * HOURS, "24 tunnin kuluessa"),
        ("fi", 7 * DAYS, "7 päivän kuluessa"),
        ("sl", 1 * HOURS, "v 1 uri"),
        ("sl", 2 * HOURS, "v 2 urah"),
        ("sl", 3 * HOURS, "v 3 urah"),
        ("sl", 4 * HOURS, "v 4 urah"),
        ("sl", 5 * HOURS, "v 5 urah"),
        ("sl", 21 * HOURS, "v 21 urah"),
        ("sl", 101 * HOURS, "v 101 uri"),
        ("sl", 2 * DAYS, "v 2 dneh"),
        ("sl", 7 * DAYS, "v 7 dneh"),
        ("tl", 1 * HOURS, "sa loob ng 1 oras"),
        ("tl", 4 * HOURS, "sa loob ng 4 na oras"),
        ("tl", 24 * HOURS, "sa loob ng 24 na oras"),
        ("tl", 7 * DAYS, "sa loob ng 7 araw"),
        ("en", 1 * HOURS, "within 1 hour"),
        ("en", 24 * HOURS, "within 24 hours"),
        ("en", 7 * DAYS, "within 7 days"),
    ],
)
def test_the_response_time_agrees_with_its_number_in_each_language(language, duration, expected):
    assert response_time(duration, language) == expected


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(minutes=30), "within 1 hour"),
        (timedelta(minutes=90), "within 2 hours"),
        (24 * HOURS, "within 24 hours"),
        (47 * HOURS, "within 47 hours"),
        (48 * HOURS, "within 2 days"),
        (50 * HOURS, "within 50 hours"),
        (72 * HOURS, "within 3 days"),
        (timedelta(hours=71, minutes=1), "within 3 days"),
    ],
)
def test_hours_below_48_days_from_48_when_whole_and_part_hours_round_up(duration, expected):
    assert response_time(duration, "en") == expected


@pytest.mark.parametrize("duration", [timedelta(0), -HOURS])
def test_a_response_time_must_be_positive(duration):
    with pytest.raises(ValueError, match="positive"):
        response_time(duration, "en")


def test_a_language_without_a_phrase_is_refused():
    with pytest.raises(ValueError, match="'de'"):
        response_time(HOURS, "de")


# --- acknowledgement ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "greeting", "phrase", "signature"),
    [
        ("sv", "Hej Annie,", "återkommer till dig inom 4 timmar.", "Kundservice"),
        ("fi", "Hei Annie,", "vastaamme sinulle 4 tunnin kuluessa.", "Asiakaspalvelu"),
        ("sl", "Pozdravljeni, Annie!", "vam odgovorili v 4 urah.", "Služba za pomoč strankam"),
        ("tl", "Magandang araw po, Annie!", "sa inyo sa loob ng 4 na oras.", "Customer Service Team"),
        ("en", "Dear Annie,", "get back to you within 4 hours.", "Customer Service"),
    ],
)
def test_each_language_greets_by_preferred_name_and_names_case_subject_and_response_time(
    locale, greeting, phrase, signature
):
    message = ack(locale)

    assert message.language == locale
    assert message.text.startswith(greeting + "\n")
    assert "CASE-0042" in message.subject
    assert "CASE-0042" in message.text
    assert "Late delivery" in message.text
    assert phrase in message.text
    assert message.text.rstrip().endswith(signature)
    assert "Anna Berg" not in message.text
    assert "{" not in message.subject + message.text


@pytest.mark.parametrize(
    ("locale", "duration", "phrase"),
    [
        ("sl", 1 * HOURS, "odgovorili v 1 uri."),
        ("sl", 2 * HOURS, "odgovorili v 2 urah."),
        ("sl", 7 * DAYS, "odgovorili v 7 dneh."),
        ("sv", 1 * HOURS, "till dig inom 1 timme."),
        ("fi", 3 * DAYS, "sinulle 3 päivän kuluessa."),
        ("tl", 1 * HOURS, "sa inyo sa loob ng 1 oras."),
        ("en", 2 * DAYS, "to you within 2 days."),
    ],
)
def test_the_response_time_reads_correctly_inside_the_template_sentence(locale, duration, phrase):
    assert phrase in ack(locale, first_response=duration).text


@pytest.mark.parametrize("preferred_name", [None, "", "   "])
def test_the_name_is_used_when_there_is_no_preferred_name(preferred_name):
    message = ack("sv", name="Nguyễn Văn An", preferred_name=preferred_name)

    assert message.text.startswith("Hej Nguyễn Văn An,\n")


@pytest.mark.parametrize("locale", ["de", "pt-BR", "zh-Hant-TW", "EN-gb", "not a locale", ""])
def test_unknown_or_unusable_locales_fall_back_to_english(locale):
    message = ack(locale)

    assert message.language == "en"
    assert message.text.startswith("Dear Annie,\n")


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("sv-SE", "sv"),
        ("sv-FI", "sv"),
        ("fi-FI", "fi"),
        ("sl-SI", "sl"),
        ("tl-PH", "tl"),
        ("fil", "tl"),
        ("fil-PH", "tl"),
        ("en-GB", "en"),
    ],
)
def test_regional_locales_and_filipino_pick_their_language(locale, language):
    assert ack(locale).language == language


def test_placeholder_syntax_in_a_value_is_inserted_literally():
    message = ack(
        "en",
        preferred_name="{case_ref}",
        complaint_subject="Refund for {name} {0} {response_time!r}",
        case_ref="{complaint_subject}",
    )

    assert message.text.startswith("Dear {case_ref},\n")
    assert 'about "Refund for {name} {0} {response_time!r}"' in message.text
    assert "as case {complaint_subject}." in message.text
    assert message.subject == "We have received your complaint (case {complaint_subject})"


def test_a_line_break_in_a_value_cannot_break_the_subject_line():
    message = ack("en", case_ref="CASE-1\r\nBcc: someone@example.com")

    assert message.subject == "We have received your complaint (case CASE-1 Bcc: someone@example.com)"


# --- templates ------------------------------------------------------------------------


def test_the_supported_languages_are_the_template_files_present():
    assert set(SUPPORTED_LANGUAGES) == {"sv", "fi", "sl", "tl", "en"}
    assert set(SUPPORTED_LANGUAGES) == {path.stem for path in TEMPLATE_FILES}


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda path: path.name)
def test_every_template_file_has_exactly_the_allowed_placeholders(path):
    data = json.loads(path.read_text(encoding="utf-8"))

    assert set(data) == {"language", "subject", "text"}
    assert data["language"] == path.stem
    assert placeholders_of(data["text"]) == PLACEHOLDERS
    assert placeholders_of(data["subject"]) <= PLACEHOLDERS
    assert "\n" not in data["subject"]
    assert 4 <= len([line for line in data["text"].splitlines() if line.strip()]) <= 7


def write(directory, stem, **fields):
    data = {
        "language": stem,
        "subject": "Case {case_ref}",
        "text": "Hi {name}, {complaint_subject} is {case_ref}; reply {response_time}.",
    }
    data.update(fields)
    (directory / f"{stem}.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"text": "Hi {name}, {case_ref}, {complaint_subject}, {response_time}, {email}"}, "email"),
        ({"text": "Hi {name}, {case_ref}, {complaint_subject}."}, "missing"),
        ({"subject": "Case {0}"}, "allowed are only"),
        ({"text": "Hi {name.title}, {case_ref}, {complaint_subject}, {response_time}"}, "name.title"),
        ({"text": "Hi {name!r}, {case_ref}, {complaint_subject}, {response_time}"}, "conversion"),
        ({"text": "Hi {name, {case_ref}, {complaint_subject}, {response_time}"}, "text"),
        ({"subject": "Case\n{case_ref}"}, "single line"),
        ({"language": "sv"}, "does not match"),
    ],
)
def test_a_bad_template_is_refused_with_an_error_naming_its_file(tmp_path, fields, error):
    write(tmp_path, "en", **fields)

    with pytest.raises(TemplateError, match=error) as raised:
        load_templates(tmp_path)

    assert "en.json" in str(raised.value)


def test_a_template_without_a_response_time_phrase_is_refused(tmp_path):
    write(tmp_path, "en")
    write(tmp_path, "de")

    with pytest.raises(TemplateError, match=r"de\.json.*response-time phrase"):
        load_templates(tmp_path)


def test_a_valid_template_directory_loads_by_language(tmp_path):
    write(tmp_path, "en")
    write(tmp_path, "sv")

    assert set(load_templates(tmp_path)) == {"en", "sv"}


# --- the confirmation link of a new address ----------------------------------------------


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_the_confirmation_mail_greets_no_one_by_name_and_carries_only_the_link_and_its_validity(language):
    # It goes to an address nobody has confirmed: nothing the requester typed may be in it.
    link = "https://shop.example.com/email-confirmations/abc.def"
    message = email_confirmation(language, link=link, valid_for=24 * HOURS)
    assert message.language == language and link in message.text
    assert response_time(24 * HOURS, language) in message.text
    assert placeholders_of(
        json.loads((CONFIRMATION_TEMPLATE_DIR / f"{language}.json").read_text())["text"]
    ) == {
        "link",
        "valid_for",
    }
