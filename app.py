"""Wiring only: the Chalice app, its middleware and its blueprints."""

from chalice import Chalice

from chalicelib import wiring
from chalicelib.api import (
    audit,
    batches,
    campaigns,
    cases,
    customers,
    duplicates,
    email_confirmations,
    export,
    http,
    identities,
    imports,
    interactions,
    jobs,
    me,
    merges,
    openapi,
    products,
    segments,
    unsubscribe,
    webhook_sources,
    webhook_subscriptions,
)
from chalicelib.api import docs as explorer
from chalicelib.api import erasure as erasure_api
from chalicelib.api.authentication import authenticate
from chalicelib.api.middleware import http_middleware
from chalicelib.config import get_settings
from chalicelib.events import campaigns as campaign_events
from chalicelib.events import cases as case_events
from chalicelib.events import customer_stream, loyalty, webhooks_in
from chalicelib.events import identities as identity_events
from chalicelib.events import imports as import_events
from chalicelib.events import jobs as job_events
from chalicelib.events import segments as segment_events
from chalicelib.events import webhooks_out as webhook_out_events

settings = get_settings()
app = Chalice(app_name="crm")
app.api.binary_types = []
http.configure(
    authenticate,
    settings.max_body_bytes,
    lambda: {"now": wiring.clock.now()},
    lambda customer_id: wiring.merge_repository().resolve(customer_id),
)
app.register_middleware(http_middleware(settings.cors_allowed_origins, settings.max_body_bytes), "http")

app.register_blueprint(openapi.bp)
app.register_blueprint(explorer.bp)
app.register_blueprint(customers.bp)
app.register_blueprint(batches.bp)
app.register_blueprint(duplicates.bp)
app.register_blueprint(interactions.bp)
app.register_blueprint(cases.bp)
app.register_blueprint(audit.bp)
app.register_blueprint(me.bp)
app.register_blueprint(email_confirmations.bp)
app.register_blueprint(export.bp)
app.register_blueprint(erasure_api.bp)
app.register_blueprint(identities.bp)
app.register_blueprint(jobs.bp)
app.register_blueprint(products.bp)
app.register_blueprint(segments.bp)
app.register_blueprint(merges.bp)
app.register_blueprint(imports.bp)
app.register_blueprint(campaigns.bp)
app.register_blueprint(unsubscribe.bp)
app.register_blueprint(customer_stream.bp)
app.register_blueprint(loyalty.bp)
app.register_blueprint(case_events.bp)
app.register_blueprint(identity_events.bp)
app.register_blueprint(job_events.bp)
app.register_blueprint(import_events.bp)
app.register_blueprint(segment_events.bp)
app.register_blueprint(campaign_events.bp)
app.register_blueprint(webhook_sources.bp)
app.register_blueprint(webhooks_in.bp)
app.register_blueprint(webhook_subscriptions.bp)
app.register_blueprint(webhook_out_events.bp)
