"""The composition root: settings, clock, repositories, queues, mail and the services built
on them, for both entry points (the routes in api/ and the consumers in events/), each built
lazily on first use so cold starts and tests stay cheap.

`clock` is module state on purpose: tests freeze time by replacing it.
"""

from __future__ import annotations

from functools import lru_cache

from chalicelib.config import get_settings
from chalicelib.domain.clock import Clock

clock: Clock = Clock()


@lru_cache(maxsize=1)
def repositories():
    from chalicelib.store.customers import CustomerRepository
    from chalicelib.store.interactions import InteractionRepository

    region = get_settings().region
    return CustomerRepository(region), InteractionRepository(region)


@lru_cache(maxsize=1)
def cursor_codec():
    from chalicelib.api.cursors import CursorSigner

    settings = get_settings()
    if not settings.cursor_secret:
        raise RuntimeError("CRM_CURSOR_SECRET is not set: page cursors cannot be signed")
    keys = [*settings.cursor_previous_secrets, settings.cursor_secret]
    return CursorSigner(keys, settings.cursor_max_age_s, lambda: clock.now())


def customer_service():
    from chalicelib.services.customers import CustomerService

    customers, _ = repositories()
    return CustomerService(customers, cursor_codec(), clock, duplicates=duplicate_service())


@lru_cache(maxsize=1)
def duplicate_repository():
    from chalicelib.store.duplicates import DuplicateRepository

    return DuplicateRepository(get_settings().region)


def duplicate_service():
    from chalicelib.services.duplicates import DuplicateService

    customers, _ = repositories()
    return DuplicateService(
        duplicate_repository(),
        customers,
        cursor_codec(),
        clock,
        get_settings().duplicate_threshold,
        resolve_alias=merge_repository().resolve,
    )


@lru_cache(maxsize=1)
def confirmation_links():
    from chalicelib.domain.email_change import ConfirmationLinks

    settings = get_settings()
    if not settings.link_secret:
        raise RuntimeError("CRM_LINK_SECRET is not set: email confirmation links cannot be signed")
    return ConfirmationLinks(settings.link_secret, settings.public_base_url)


@lru_cache(maxsize=1)
def email_change_limits():
    from datetime import timedelta

    from chalicelib.domain.email_change import EmailChangeLimits

    settings = get_settings()
    return EmailChangeLimits(
        timedelta(seconds=settings.email_change_cooldown_s), settings.email_changes_per_day
    )


def email_change_service():
    from chalicelib.services.email_change import EmailChangeService

    customers, _ = repositories()
    return EmailChangeService(
        customers, customer_service(), confirmation_links(), clock, mailer, email_change_limits()
    )


def interaction_service():
    from chalicelib.services.interactions import InteractionService

    customers, interactions = repositories()
    # A return to a survivor finds its purchase under an id being merged into it.
    return InteractionService(
        interactions, customers, cursor_codec(), clock, merged_into=merge_moves().merged_into
    )


@lru_cache(maxsize=1)
def identity_repository():
    from chalicelib.store.identities import IdentityRepository

    return IdentityRepository(get_settings().region)


def identity_service():
    from chalicelib.services.identities import IdentityService

    return IdentityService(identity_repository(), customer_service(), clock, get_settings().jwt_issuer)


@lru_cache(maxsize=1)
def loyalty_repository():
    from chalicelib.store.loyalty import LoyaltyRepository

    return LoyaltyRepository(get_settings().region)


@lru_cache(maxsize=1)
def loyalty_config():
    import os

    from chalicelib.domain.loyalty.config import LoyaltyConfig

    return LoyaltyConfig.from_env(os.environ)


def loyalty_service():
    from chalicelib.services.loyalty import LoyaltyService

    customers, _ = repositories()
    return LoyaltyService(
        loyalty_repository(),
        clock,
        loyalty_config(),
        get_settings().base_currency,
        cursor_codec(),
        # Strongly consistent: the tombstone tells a deleted customer from one that never was,
        # the alias a merged one (whose late records are skipped: their copies count).
        was_deleted=lambda customer_id: (
            customers.was_deleted(customer_id, consistent=True) or merge_moves().has_alias(customer_id)
        ),
    )


@lru_cache(maxsize=1)
def co_purchase_repository():
    from chalicelib.store.co_purchases import CoPurchaseRepository

    return CoPurchaseRepository(get_settings().region)


def recommendation_service(*, reuse_popular: bool = False):
    from chalicelib.services.recommendations import RecommendationService
    from chalicelib.store.products import ProductRepository

    settings = get_settings()
    _, interactions = repositories()
    return RecommendationService(
        co_purchase_repository(),
        loyalty_repository(),
        ProductRepository(settings.region),
        interactions,
        clock,
        cursor_codec(),
        min_support=settings.related_min_support,
        window_days=settings.repurchase_window_days,
        reuse_popular=reuse_popular,
    )


@lru_cache(maxsize=1)
def event_publisher():
    from chalicelib.store.queues import SqsEventPublisher

    settings = get_settings()
    return SqsEventPublisher(settings.events_queue_name, settings.region)


@lru_cache(maxsize=1)
def case_repository():
    from chalicelib.store.cases import CaseRepository

    return CaseRepository(get_settings().region)


@lru_cache(maxsize=1)
def sla():
    import os

    from chalicelib.domain.cases import sla_from_env

    return sla_from_env(os.environ)


@lru_cache(maxsize=1)
def mailer():
    from chalicelib.store.mail import SesMailer

    settings = get_settings()
    return SesMailer(settings.mail_from, settings.region)


@lru_cache(maxsize=1)
def follow_up_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.follow_up_queue_name, settings.region)


def case_service():
    from chalicelib.services.cases import CaseService

    customers, _ = repositories()
    return CaseService(case_repository(), customers, clock, sla(), mailer, follow_up_queue, cursor_codec())


def product_service():
    from chalicelib.services.products import ProductService
    from chalicelib.store.products import ProductRepository

    return ProductService(ProductRepository(get_settings().region), cursor_codec(), clock)


@lru_cache(maxsize=1)
def audit_repository():
    from chalicelib.store.audit import AuditRepository

    return AuditRepository()


@lru_cache(maxsize=1)
def idempotency_pointers():
    from chalicelib.store.idempotency import IdempotencyPointers

    return IdempotencyPointers(get_settings().region)


@lru_cache(maxsize=1)
def attempt_seeds():
    from chalicelib.store.idempotency import AttemptSeeds

    return AttemptSeeds()


def keyed_requests():
    from chalicelib.services.keyed_requests import KeyedRequests

    return KeyedRequests(attempt_seeds(), idempotency_pointers(), clock)


def erasure_service():
    from chalicelib.services.erasure import ErasureService

    customers, interactions = repositories()
    return ErasureService(
        customers,
        interactions,
        case_repository(),
        loyalty_repository(),
        audit_repository(),
        idempotency_pointers(),
        clock,
        job_repository(),
        export_documents(),
        identity_repository(),
        segments=membership_service(),
        campaign_sends=campaign_send_repository(),
        webhooks=webhook_source_repository(),
        merges=merge_moves(),
    )


@lru_cache(maxsize=1)
def merge_moves():
    from chalicelib.store.merge_moves import MergeMoves

    return MergeMoves(get_settings().region)


def merge_job():
    from chalicelib.services.merge_job import MergeJob

    segments = membership_service()
    return MergeJob(
        merge_moves(),
        clock,
        job_queue,
        recommendation_service().withdraw,
        segments.forget,
        segments.customers_changed,
        job_repository(),
        export_documents,
    )


@lru_cache(maxsize=1)
def job_repository():
    from chalicelib.store.jobs import JobRepository

    return JobRepository()


@lru_cache(maxsize=1)
def export_documents():
    from chalicelib.store.exports import ExportDocuments

    settings = get_settings()
    return ExportDocuments(settings.exports_bucket, settings.region)


@lru_cache(maxsize=1)
def job_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.jobs_queue_name, settings.region)


@lru_cache(maxsize=1)
def import_repository():
    from chalicelib.store.imports import ImportRepository

    return ImportRepository(get_settings().region)


@lru_cache(maxsize=1)
def import_files():
    from chalicelib.store.import_files import ImportFiles

    settings = get_settings()
    return ImportFiles(settings.imports_bucket, settings.region)


@lru_cache(maxsize=1)
def import_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.imports_queue_name, settings.region)


def import_rows():
    from chalicelib.api.import_schemas import RowValidators
    from chalicelib.services.customers import CustomerService
    from chalicelib.services.import_rows import ImportRows

    customers, interactions = repositories()

    def customer_service_with(new_id):
        return CustomerService(
            customers, cursor_codec(), clock, new_id=new_id, duplicates=duplicate_service()
        )

    return ImportRows(
        RowValidators(),
        customers,
        customer_service_with,
        duplicate_service(),
        interaction_service(),
        interactions,
        lambda customer_id: merge_repository().resolve(customer_id, consistent=True),
        lambda: clock.now(),
        lambda customer_id: next(iter(audit_repository().of_customer(customer_id, 1, None)[0]), None),
    )


def import_service():
    from chalicelib.services.imports import ImportService

    return ImportService(
        import_repository(), import_files(), import_queue(), import_rows, clock, cursor_codec()
    )


def audit_service():
    from chalicelib.services.audit import AuditService

    return AuditService(audit_repository(), customer_service(), cursor_codec())


@lru_cache(maxsize=1)
def merge_repository():
    from chalicelib.store.merges import MergeRepository

    customers, _ = repositories()
    return MergeRepository(customers)


def merge_service():
    from chalicelib.services.merges import MergeService

    customers, _ = repositories()
    return MergeService(merge_repository(), customers, clock)


def order_service():
    from chalicelib.services.orders import OrderService

    return OrderService(customer_service(), product_service(), interaction_service())


def export_service():
    from chalicelib.services.export import ExportService

    return ExportService(
        customer_service(), loyalty_service(), interaction_service(), case_service(), audit_service(), clock
    )


def _export_document(customer_id: str, deadline):
    """The export document, in pieces: the customer's data (NotFound on the first piece for an
    unknown customer) rendered by the API's models, as GET …/export answers it."""
    from chalicelib.api.export_document import document_chunks

    yield from document_chunks(export_service().gather(customer_id, deadline), get_settings().base_currency)


def job_service():
    from chalicelib.services.jobs import JobService

    customers, _ = repositories()
    return JobService(
        job_repository(), customers, clock, job_queue, erasure_service, export_documents, _export_document
    )


@lru_cache(maxsize=1)
def segment_repository():
    from chalicelib.store.segments import SegmentRepository

    return SegmentRepository(get_settings().region)


@lru_cache(maxsize=1)
def membership_repository():
    from chalicelib.store.segment_members import MembershipRepository

    return MembershipRepository(get_settings().region)


@lru_cache(maxsize=1)
def segments_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.segments_queue_name, settings.region)


def segment_service():
    from chalicelib.services.segments import SegmentService

    customers, _ = repositories()
    return SegmentService(segment_repository(), membership_repository(), customers, clock, cursor_codec())


def membership_service():
    from chalicelib.services.segment_membership import MembershipService

    customers, _ = repositories()
    return MembershipService(
        segment_repository(),
        membership_repository(),
        customers,
        loyalty_repository(),
        case_repository(),
        segments_queue,
        clock,
    )


@lru_cache(maxsize=1)
def campaign_repository():
    from chalicelib.store.campaigns import CampaignRepository

    return CampaignRepository(get_settings().region)


@lru_cache(maxsize=1)
def campaign_send_repository():
    from chalicelib.store.campaign_sends import CampaignSendRepository

    return CampaignSendRepository(get_settings().region)


@lru_cache(maxsize=1)
def campaigns_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.campaigns_queue_name, settings.region)


@lru_cache(maxsize=1)
def unsubscribe_links():
    from chalicelib.domain.unsubscribe import UnsubscribeLinks

    settings = get_settings()
    if not settings.link_secret:
        raise RuntimeError("CRM_LINK_SECRET is not set: unsubscribe links cannot be signed")
    return UnsubscribeLinks(settings.link_secret, settings.public_base_url)


def campaign_composer():
    from chalicelib.services.campaign_messages import Composer

    # One recommendation service for the composer's life (a delivery message, a preview),
    # made on the first pick: the popular list is read once for all its customers.
    recommendations = lru_cache(maxsize=1)(lambda: recommendation_service(reuse_popular=True))
    return Composer(lambda customer_id, kind: recommendations().pick(customer_id, kind), unsubscribe_links)


def campaign_service():
    from chalicelib.services.campaigns import CampaignService

    customers, _ = repositories()
    return CampaignService(
        campaign_repository(),
        campaign_send_repository(),
        lambda segment_id: segment_repository().get(segment_id, counted=False) is not None,
        customers,
        campaign_composer(),
        clock,
        cursor_codec(),
    )


def campaign_run_service():
    from chalicelib.services.campaign_runs import CampaignRunService

    customers, _ = repositories()
    return CampaignRunService(
        campaign_repository(),
        campaign_send_repository(),
        membership_repository(),
        customers,
        campaign_composer(),
        mailer,
        campaigns_queue,
        clock,
    )


def unsubscribe_service():
    from chalicelib.services.unsubscribe import UnsubscribeService

    customers, _ = repositories()
    return UnsubscribeService(unsubscribe_links(), customers, customer_service().update)


# Inbound webhooks


@lru_cache(maxsize=1)
def webhook_source_repository():
    from chalicelib.store.webhook_sources import WebhookSourceRepository

    return WebhookSourceRepository(get_settings().region)


@lru_cache(maxsize=1)
def webhooks_in_queue():
    from chalicelib.store.queues import SqsWorkQueue

    settings = get_settings()
    return SqsWorkQueue(settings.webhooks_in_queue_name, settings.region)


def webhook_source_service():
    from chalicelib.services.webhook_inbound import WebhookSourceService

    settings = get_settings()
    return WebhookSourceService(
        webhook_source_repository(),
        webhooks_in_queue,
        clock,
        settings.webhook_tolerance_s,
        cursor_codec(),
        customers=customer_service(),
    )


def inbound_webhook_processor():
    from chalicelib.services.webhook_inbound import InboundWebhookProcessor

    return InboundWebhookProcessor(
        webhook_source_repository(), customer_service(), interaction_service(), clock, webhooks_in_queue
    )


# Outbound webhooks. Tests replace `webhook_resolver` (no real DNS), `webhook_sender` (a short
# timeout) and `webhook_jitter` (the retry delays' randomness).


@lru_cache(maxsize=1)
def webhook_subscription_repository():
    from chalicelib.store.webhook_subscriptions import SubscriptionRepository

    return SubscriptionRepository(get_settings().region)


@lru_cache(maxsize=1)
def webhook_delivery_repository():
    from chalicelib.store.webhook_subscriptions import DeliveryRepository

    return DeliveryRepository(get_settings().region)


@lru_cache(maxsize=1)
def webhooks_out_queue():
    from chalicelib.store.webhook_queue import SqsFifoQueue

    settings = get_settings()
    return SqsFifoQueue(settings.webhooks_out_queue_name, settings.region)


def webhook_resolver():
    from chalicelib.store.webhook_http import resolve

    return resolve


def webhook_sender():
    from chalicelib.store.webhook_http import WebhookSender

    return WebhookSender(get_settings().webhook_allow_hosts, webhook_resolver())


def webhook_jitter() -> float:
    import random

    return random.random()  # noqa: S311 - spreads retries, guards nothing


def _check_webhook_url(url: str):
    from chalicelib.store.webhook_http import checked_target

    return checked_target(url, get_settings().webhook_allow_hosts, webhook_resolver())


def webhook_subscription_service():
    from chalicelib.services.webhook_subscriptions import WebhookSubscriptionService

    return WebhookSubscriptionService(
        webhook_subscription_repository(),
        webhook_delivery_repository(),
        webhooks_out_queue,
        _check_webhook_url,
        clock,
        cursor_codec(),
    )


def webhook_outbound_service():
    from chalicelib.services.webhook_outbound import WebhookOutbound

    return WebhookOutbound(
        webhook_subscription_repository(),
        webhook_delivery_repository(),
        webhooks_out_queue,
        lambda: webhook_sender(),
        lambda event: event_publisher().publish(event),
        clock,
        lambda: webhook_jitter(),
        _erased,
    )


def _erased(customer_id: str) -> bool:
    customers, _ = repositories()
    return customers.erased_at(customer_id, consistent=True) is not None
