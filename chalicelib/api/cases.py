"""Complaint case routes (staff)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.case_schemas import (
    CaseHistoryOut,
    CaseHistoryPage,
    CaseListQuery,
    CaseOut,
    CasePage,
    CasePatch,
)
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery

bp = Blueprint(__name__)


def _case_response(case):
    return json_response(CaseOut.of(case), 200, {"ETag": etag(case.version)})


def _page(page):
    return page_response(page, CaseOut.of)


@api_route(
    bp,
    "/cases",
    "GET",
    summary="Cases, due first (active cases unless a status is given)",
    query=CaseListQuery,
    response=CasePage,
)
def list_cases(call: Call):
    q = call.query
    return _page(
        wiring.case_service().list(
            status=q.status,
            severity=q.severity,
            assignee=q.assignee,
            due_before=q.due_before,
            limit=q.limit,
            cursor=q.cursor,
        )
    )


@api_route(
    bp, "/cases/{case_id}", "GET", summary="Read a case", response=CaseOut, errors=(404,), headers=("ETag",)
)
def get_case(call: Call, case_id: str):
    return _case_response(wiring.case_service().get(case_id))


@api_route(
    bp,
    "/cases/{case_id}/history",
    "GET",
    summary="A case's whole history, newest first",
    query=PageQuery,
    response=CaseHistoryPage,
    errors=(404,),
)
def get_case_history(call: Call, case_id: str):
    page = wiring.case_service().history(case_id, call.query.limit, call.query.cursor)
    return page_response(page, CaseHistoryOut.of)


@api_route(
    bp,
    "/cases/{case_id}",
    "PATCH",
    summary="Assign a case, change its status, add a note",
    body=CasePatch,
    response=CaseOut,
    errors=(404, 409, 412, 422),
    headers=("ETag",),
)
def update_case(call: Call, case_id: str):
    case = wiring.case_service().change(case_id, call.body.changes(), if_match(call.headers), call.actor)
    return _case_response(case)


@api_route(
    bp,
    "/customers/{customer_id}/cases",
    "GET",
    summary="A customer's cases, newest first",
    query=PageQuery,
    response=CasePage,
    errors=(404,),
)
def list_customer_cases(call: Call, customer_id: str):
    return _page(wiring.case_service().of_customer(customer_id, call.query.limit, call.query.cursor))
