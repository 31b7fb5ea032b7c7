"""Bulk imports write a chunk's rows several to a TransactWriteItems (each row's writes and its
outcome): rows of one chunk that are the same person are flagged as each other's duplicates; a
group DynamoDB refuses (an email taken, twice the same item) is written again row by row, each
row's conditions deciding its outcome; one customer's several interactions in one group."""

from __future__ import annotations

import json

import pytest

from tests.functional.conftest import Api, record_reads
from tests.integration.imports import (
    _chunks,
    _counts,
    _customer_count,
    _deliver,
    _import,
    _put,
    _receive,
    _request,
    _results,
    _start,
)
from tests.integration.test_events import _events

PHONE = "+63 917 123 4567"


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _noted(customer_id: str) -> list[tuple[str, float]]:
    from chalicelib import wiring

    return wiring.duplicate_repository().noted_candidates(customer_id)


def _ndjson(*lines: dict) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()


def _purchase(email: str, sku: str, day: int, **fields) -> dict:
    return {
        "customer_email": email,
        "type": "purchase",
        "channel": "store",
        "occurred_at": f"2026-03-{day:02d}T10:00:00Z",
        "currency": "EUR",
        "items": [{"sku": sku, "name": sku.title(), "quantity": 1, "unit_price": "4.50"}],
        **fields,
    }


def test_rows_of_one_chunk_that_are_the_same_person_are_noted_as_possible_duplicates(api, chalice_app, pump):
    known = api.create_customer(name="Eleanor Whitfield", phone="+44 20 7946 0958")
    data = (
        "name,email,phone\n"
        f"Maria Santos,maria@example.ph,{PHONE}\n"
        "Jyrki Häkkinen,jyrki@example.fi,\n"
        "María Santos,m.santos@example.ph,+639171234567\n"
        "Eleanor Whitfield,eleanor@example.co.uk,+442079460958\n"
    ).encode()
    imp = _import(api, chalice_app, data)

    assert _counts(imp)["created"] == 4
    maria, jyrki, maria_again, eleanor = (r["customer_id"] for r in _results(api, imp["id"]))
    assert _noted(maria_again) == [(maria, 0.94)]  # an earlier row of the same chunk
    assert _noted(eleanor) != [] and _noted(eleanor)[0][0] == known["id"]  # a customer stored before
    assert _noted(maria) == [] and _noted(jyrki) == []
    pump.drain()
    flagged = {e["customer_id"] for e in _events() if e["type"] == "customer.possible_duplicate"}
    assert flagged == {maria_again, eleanor}


@pytest.mark.parametrize("taken", [1, 2], ids=["first-row-taken", "second-row-taken"])
def test_a_row_that_did_not_fit_a_refused_group_is_scored_only_against_rows_written(
    api, chalice_app, monkeypatch, taken
):
    """Groups of two rows (each row: its creation's transaction and its outcome's). Row 3 is
    written while rows 1 and 2 wait, does not fit, and the group is refused (one of its emails
    is taken): rows 1 and 2 are written one by one and row 3 again after them. Row 3 is the
    same person as row 1, so it notes row 1 if row 1 was created and nobody otherwise; row 1,
    written before row 3, never notes row 3."""
    from chalicelib.store import imports as import_store

    monkeypatch.setattr(
        import_store.ImportRepository, "fit_together", staticmethod(lambda units: len(units) <= 4)
    )
    api.create_customer(name="Tuija Ahonen", email="tuija@example.fi")
    emails = ["liisa@example.fi", "jyrki@example.fi"]
    emails[taken - 1] = "tuija@example.fi"
    data = (
        "name,email,phone\n"
        f"Liisa Laine,{emails[0]},{PHONE}\n"
        f"Jyrki Häkkinen,{emails[1]},\n"
        f"Liisa Laine,liisa.laine@example.fi,{PHONE}\n"
    ).encode()
    imp = _import(api, chalice_app, data)

    assert _counts(imp)["created"] == 2 and imp["failed"] == 1
    first, second, third = _results(api, imp["id"])
    assert [first["outcome"], second["outcome"], third["outcome"]] == (
        ["failed", "created", "created"] if taken == 1 else ["created", "failed", "created"]
    )
    noted = _noted(third["customer_id"])
    assert noted == ([] if taken == 1 else [(first["customer_id"], 0.94)]), noted
    for customer_id, _score in noted:
        assert api.get(f"/customers/{customer_id}").status == 200
    if taken == 2:
        assert _noted(first["customer_id"]) == []


@pytest.mark.dynamodb_local
def test_rows_repeating_an_email_or_taking_a_customers_email_fail_and_the_rest_are_created_once(
    api, chalice_app
):
    api.create_customer(name="Liisa Laine", email="liisa@example.fi")
    data = (
        "name,email\n"
        "Aino Virtanen,aino@example.fi\n"
        "Liisa Laine,LIISA@example.fi\n"
        "Eero Mäkelä,eero@example.fi\n"
        "Aino V.,aino@example.fi\n"
        "Onni Ojala,onni@example.fi\n"
    ).encode()
    imp = _import(api, chalice_app, data)

    assert _counts(imp) == {
        "status": "completed",
        "rows": 5,
        "processed": 5,
        "created": 3,
        "updated": 0,
        "skipped": 0,
        "failed": 2,
    }
    results = _results(api, imp["id"])
    assert [(r["row"], r["outcome"]) for r in results] == [
        (1, "created"),
        (2, "failed"),
        (3, "created"),
        (4, "failed"),
        (5, "created"),
    ]
    errors = api.get(f"/imports/{imp['id']}/errors").json["items"]
    assert [(e["row"], [x["field"] for x in e["errors"]]) for e in errors] == [(2, ["email"]), (4, ["email"])]
    assert _customer_count() == 4
    aino = api.get("/customers?email=aino@example.fi").json["items"]
    assert [c["name"] for c in aino] == ["Aino Virtanen"]


@pytest.mark.dynamodb_local
def test_one_customers_several_interactions_in_a_chunk_are_each_recorded_once(api, chalice_app):
    api.create_customer(name="Pirkko Järvinen", email="pirkko@example.fi")
    api.create_customer(name="Špela Kovačič", email="spela@example.si")
    lines = [_purchase("pirkko@example.fi", f"SKU-{n}", n + 1) for n in range(6)]
    lines.insert(3, _purchase("spela@example.si", "SKU-KAVA", 9))
    lines.append(_purchase("spela@example.si", "SKU-CAJ", 10))
    imp = _import(api, chalice_app, _ndjson(*lines), kind="interactions", format="ndjson")

    assert _counts(imp)["created"] == 8 and imp["failed"] == 0
    [pirkko] = api.get("/customers?email=pirkko@example.fi").json["items"]
    [spela] = api.get("/customers?email=spela@example.si").json["items"]
    pirkkos = api.get(f"/customers/{pirkko['id']}/interactions?limit=50").json["items"]
    spelas = api.get(f"/customers/{spela['id']}/interactions?limit=50").json["items"]
    assert sorted(i["items"][0]["sku"] for i in pirkkos) == [f"SKU-{n}" for n in range(6)]
    assert sorted(i["items"][0]["sku"] for i in spelas) == ["SKU-CAJ", "SKU-KAVA"]


@pytest.mark.dynamodb_local
def test_an_upsert_file_naming_the_same_interaction_twice_records_it_once(api, chalice_app):
    customer = api.create_customer(name="Juan Dela Cruz", email="juan@example.ph")
    same = _purchase("juan@example.ph", "SKU-KAPE", 3)
    other = _purchase("juan@example.ph", "SKU-PANDESAL", 4)
    imp = _import(
        api, chalice_app, _ndjson(same, other, same), kind="interactions", format="ndjson", mode="upsert"
    )

    assert [(r["row"], r["outcome"]) for r in _results(api, imp["id"])] == [
        (1, "created"),
        (2, "created"),
        (3, "skipped"),
    ]
    timeline = api.get(f"/customers/{customer['id']}/interactions?limit=50").json["items"]
    assert sorted(i["items"][0]["sku"] for i in timeline) == ["SKU-KAPE", "SKU-PANDESAL"]


@pytest.mark.dynamodb_local
def test_a_refused_group_written_row_by_row_by_a_worker_that_dies_mid_way_creates_nothing_twice(
    api, chalice_app, monkeypatch
):
    from chalicelib.services import import_rows, imports
    from chalicelib.store import imports as import_store

    monkeypatch.setattr(imports, "CHUNK_ROWS", 6)
    imp = _request(api)
    _put(imp, ("name,email\n" + "".join(f"Kund {n},kund{n}@example.se\n" for n in range(1, 13))).encode())
    _start(chalice_app)
    first, second = _receive(_chunks())

    real_write, real_commit = import_rows.ImportRows.write, import_store.ImportRepository.commit_together
    state = {"rows": 0, "refuse": True}

    def refused_once(self, units):
        if state["refuse"]:
            return False  # as DynamoDB's cancellation of the whole group
        return real_commit(self, units)

    def dies_after_the_fourth_row(self, imp_, record, **kw):
        written = real_write(self, imp_, record, **kw)
        state["rows"] += 1
        if state["rows"] == 4 and state["refuse"]:
            raise ConnectionError("the worker died after the row's write, before its outcome")
        return written

    monkeypatch.setattr(import_store.ImportRepository, "commit_together", refused_once)
    monkeypatch.setattr(import_rows.ImportRows, "write", dies_after_the_fourth_row)
    assert not _deliver(chalice_app, "run_imports", _chunks(), first, delete=False)
    state["refuse"] = False
    for record in (first, second, first):
        assert _deliver(chalice_app, "run_imports", _chunks(), record, delete=False)

    done = api.get(f"/imports/{imp['id']}").json
    assert _counts(done) == {
        "status": "completed",
        "rows": 12,
        "processed": 12,
        "created": 12,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert _customer_count() == 12
    assert len({r["customer_id"] for r in _results(api, imp["id"])}) == 12


def test_interaction_rows_read_their_customers_by_email_strongly_consistent(api, chalice_app, monkeypatch):
    """A file of purchases imported right after the customers it names must find them: an
    eventually consistent read could miss a profile written a moment ago and fail the row for
    good. Neither emulator shows the difference, so the requests themselves are checked."""
    api.create_customer(name="Maricel Dela Cruz", email="maricel@example.ph")
    reads = record_reads(monkeypatch)
    imp = _import(
        api,
        chalice_app,
        _ndjson(_purchase("maricel@example.ph", "SKU-KAPE", 2)),
        kind="interactions",
        format="ndjson",
    )

    assert _counts(imp)["created"] == 1 and imp["failed"] == 0
    customer_reads = [c for op, table, c in reads if op == "BatchGetItem" and "customers" in table]
    assert len(customer_reads) == 2 and all(customer_reads), reads


def test_rows_that_keep_losing_transaction_conflicts_are_written_on_the_next_delivery_not_failed(
    api, chalice_app, monkeypatch
):
    """Other writers keep winning (DynamoDB cancels with TransactionConflict after every retry:
    ServiceBusy): a condition that passes in a moment, so the chunk's message fails and comes
    back, and no row is stored as failed."""
    from chalicelib.errors import ServiceBusy
    from chalicelib.store import transactions

    imp = _request(api)
    _put(imp, "name,email\nKaisa Mäki,kaisa@example.fi\nBo Ek,bo@example.se\n".encode())
    _start(chalice_app)
    [chunk] = _receive(_chunks())
    real_commit = transactions._commit

    def busy(*args, **kwargs):
        raise ServiceBusy("Other requests are changing the same records right now: retry.")

    monkeypatch.setattr(transactions, "_commit", busy)
    assert not _deliver(chalice_app, "run_imports", _chunks(), chunk, delete=False)
    assert api.get(f"/imports/{imp['id']}").json["processed"] == 0
    assert api.get(f"/imports/{imp['id']}/errors").json["items"] == []

    monkeypatch.setattr(transactions, "_commit", real_commit)
    assert _deliver(chalice_app, "run_imports", _chunks(), chunk, delete=False)
    done = api.get(f"/imports/{imp['id']}").json
    assert (done["status"], done["created"], done["failed"]) == ("completed", 2, 0)


def test_skip_mode_looks_for_duplicates_with_strongly_consistent_reads(api, chalice_app, monkeypatch):
    """With `on_duplicate: "skip"` the row before may be this same person, created a moment ago:
    an eventually consistent read could miss it and create the duplicate the file asked to skip.
    Neither emulator shows the difference, so the requests themselves are checked."""
    reads = record_reads(monkeypatch)
    data = (
        f"name,email,phone\nMaria Santos,maria@example.ph,{PHONE}\nMaría Santos,m.santos@example.ph,{PHONE}\n"
    )
    imp = _import(api, chalice_app, data.encode(), on_duplicate="skip")

    assert (_counts(imp)["created"], imp["skipped"]) == (1, 1)
    requests = [(op, c) for op, table, c in reads if op in ("Query", "BatchGetItem") and "customers" in table]
    assert {operation for operation, _ in requests} == {"Query", "BatchGetItem"}
    assert all(consistent for _, consistent in requests), requests
