"""Settings for one stage, read from the environment once.

Chalice puts `.chalice/config.json`'s `environment_variables` for the stage into the
environment; the local stack and the tests set the same variables themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    stage: str = "local"
    region: str = "eu-north-1"
    customers_table: str = "crm-local-customers"
    interactions_table: str = "crm-local-interactions"
    cases_table: str = "crm-local-cases"
    idempotency_table: str = "crm-local-idempotency"
    jobs_table: str = "crm-local-jobs"
    campaigns_table: str = "crm-local-campaigns"
    campaign_sends_table: str = "crm-local-campaign-sends"
    webhooks_table: str = "crm-local-webhooks"
    imports_table: str = "crm-local-imports"
    # Chalice needs stream ARNs as literals when app.py is imported: the cloud stages set the
    # real ones; locally the event pump finds a handler's stream by the table name in it.
    customers_stream_arn: str = (
        "arn:aws:dynamodb:eu-north-1:000000000000:table/crm-local-customers/stream/local"
    )
    interactions_stream_arn: str = (
        "arn:aws:dynamodb:eu-north-1:000000000000:table/crm-local-interactions/stream/local"
    )
    cases_stream_arn: str = "arn:aws:dynamodb:eu-north-1:000000000000:table/crm-local-cases/stream/local"
    jobs_stream_arn: str = "arn:aws:dynamodb:eu-north-1:000000000000:table/crm-local-jobs/stream/local"
    campaigns_stream_arn: str = (
        "arn:aws:dynamodb:eu-north-1:000000000000:table/crm-local-campaigns/stream/local"
    )
    # "hs256": tokens signed with jwt_secret (local, tests).
    # "cognito": RS256 tokens of a Cognito user pool, keys from jwks_url.
    auth_mode: str = "hs256"
    jwt_secret: str = ""
    jwt_issuer: str = "crm-local"
    jwt_audience: str = "crm-api"
    jwks_url: str = ""
    cursor_secret: str = ""
    # Keys that signed cursors before cursor_secret (a rotation): still accepted, never used
    # to sign. Cursors older than cursor_max_age_s are refused.
    cursor_previous_secrets: tuple[str, ...] = field(default_factory=tuple)
    cursor_max_age_s: int = 24 * 60 * 60
    # Signs the email-confirmation links; the links point at public_base_url: the front end
    # whose page shows the change (GET) and confirms it (POST), e.g. https://shop.example.com;
    # locally, with no front end, the local API's URL.
    link_secret: str = ""
    public_base_url: str = ""
    cors_allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    base_currency: str = "EUR"
    events_queue_name: str = "crm-local-events.fifo"
    follow_up_queue_name: str = "crm-local-follow-ups"
    jobs_queue_name: str = "crm-local-jobs"
    segments_queue_name: str = "crm-local-segments"
    campaigns_queue_name: str = "crm-local-campaigns"
    webhooks_in_queue_name: str = "crm-local-webhooks-in"
    webhooks_out_queue_name: str = "crm-local-webhooks-out.fifo"
    # Bulk imports: the uploads' S3 events, and the chunks (and planning) of running imports.
    import_uploads_queue_name: str = "crm-local-import-uploads"
    imports_queue_name: str = "crm-local-imports"
    # Inbound webhooks: how far a delivery's webhook-timestamp may be from now. Outbound: the
    # hosts a subscription may name although they resolve to a private or loopback address
    # (and over http too); the local stage allows this machine's by default.
    webhook_tolerance_s: int = 300
    webhook_allow_hosts: tuple[str, ...] = field(default_factory=tuple)
    # The cloud stages get the bucket's name from the stack (infra/package.py); locally it is
    # the name infra/resources.json gives it in moto's account and region.
    exports_bucket: str = "crm-local-exports-123456789012-eu-north-1"
    imports_bucket: str = "crm-local-imports-123456789012-eu-north-1"
    mail_from: str = "customer-service@example.com"
    max_body_bytes: int = 1024 * 1024
    # Self-service changes of email address (each mails a link): per customer, a cooldown
    # after each request and a cap per 24 hours.
    email_change_cooldown_s: int = 60
    email_changes_per_day: int = 5
    # Recommendations: a pair is shown once this many customers bought both; a habit is due
    # once its next expected purchase is this many days away or less.
    related_min_support: int = 2
    repurchase_window_days: int = 7
    # A new customer's candidates scoring at least this are its `possible_duplicates`.
    duplicate_threshold: float = 0.85

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ = os.environ) -> Settings:
        defaults = cls()
        return cls(
            stage=env.get("CRM_STAGE", defaults.stage),
            region=env.get("AWS_DEFAULT_REGION", env.get("AWS_REGION", defaults.region)),
            customers_table=env.get("CRM_CUSTOMERS_TABLE", defaults.customers_table),
            interactions_table=env.get("CRM_INTERACTIONS_TABLE", defaults.interactions_table),
            cases_table=env.get("CRM_CASES_TABLE", defaults.cases_table),
            idempotency_table=env.get("CRM_IDEMPOTENCY_TABLE", defaults.idempotency_table),
            jobs_table=env.get("CRM_JOBS_TABLE", defaults.jobs_table),
            jobs_stream_arn=env.get("CRM_JOBS_STREAM_ARN", defaults.jobs_stream_arn),
            jobs_queue_name=env.get("CRM_JOBS_QUEUE_NAME", defaults.jobs_queue_name),
            segments_queue_name=env.get("CRM_SEGMENTS_QUEUE_NAME", defaults.segments_queue_name),
            campaigns_table=env.get("CRM_CAMPAIGNS_TABLE", defaults.campaigns_table),
            campaign_sends_table=env.get("CRM_CAMPAIGN_SENDS_TABLE", defaults.campaign_sends_table),
            campaigns_stream_arn=env.get("CRM_CAMPAIGNS_STREAM_ARN", defaults.campaigns_stream_arn),
            campaigns_queue_name=env.get("CRM_CAMPAIGNS_QUEUE_NAME", defaults.campaigns_queue_name),
            webhooks_table=env.get("CRM_WEBHOOKS_TABLE", defaults.webhooks_table),
            imports_table=env.get("CRM_IMPORTS_TABLE", defaults.imports_table),
            import_uploads_queue_name=env.get(
                "CRM_IMPORT_UPLOADS_QUEUE_NAME", defaults.import_uploads_queue_name
            ),
            imports_queue_name=env.get("CRM_IMPORTS_QUEUE_NAME", defaults.imports_queue_name),
            imports_bucket=env.get("CRM_IMPORTS_BUCKET", defaults.imports_bucket),
            webhooks_in_queue_name=env.get("CRM_WEBHOOKS_IN_QUEUE_NAME", defaults.webhooks_in_queue_name),
            webhooks_out_queue_name=env.get("CRM_WEBHOOKS_OUT_QUEUE_NAME", defaults.webhooks_out_queue_name),
            webhook_tolerance_s=int(env.get("CRM_WEBHOOK_TOLERANCE_S", defaults.webhook_tolerance_s)),
            webhook_allow_hosts=_csv(
                env.get(
                    "CRM_WEBHOOK_ALLOW_HOSTS",
                    "127.0.0.1,localhost" if env.get("CRM_STAGE", defaults.stage) == "local" else "",
                )
            ),
            exports_bucket=env.get("CRM_EXPORTS_BUCKET", defaults.exports_bucket),
            cases_stream_arn=env.get("CRM_CASES_STREAM_ARN", defaults.cases_stream_arn),
            follow_up_queue_name=env.get("CRM_FOLLOW_UP_QUEUE_NAME", defaults.follow_up_queue_name),
            mail_from=env.get("CRM_MAIL_FROM", defaults.mail_from),
            customers_stream_arn=env.get("CRM_CUSTOMERS_STREAM_ARN", defaults.customers_stream_arn),
            interactions_stream_arn=env.get("CRM_INTERACTIONS_STREAM_ARN", defaults.interactions_stream_arn),
            auth_mode=env.get("CRM_AUTH_MODE", defaults.auth_mode),
            jwt_secret=env.get("CRM_JWT_SECRET", defaults.jwt_secret),
            jwt_issuer=env.get("CRM_JWT_ISSUER", defaults.jwt_issuer),
            jwt_audience=env.get("CRM_JWT_AUDIENCE", defaults.jwt_audience),
            jwks_url=env.get("CRM_JWKS_URL", defaults.jwks_url),
            cursor_secret=env.get("CRM_CURSOR_SECRET", defaults.cursor_secret),
            cursor_previous_secrets=_csv(env.get("CRM_CURSOR_PREVIOUS_SECRETS", "")),
            cursor_max_age_s=int(env.get("CRM_CURSOR_MAX_AGE_SECONDS", defaults.cursor_max_age_s)),
            link_secret=env.get("CRM_LINK_SECRET", defaults.link_secret),
            public_base_url=env.get("CRM_PUBLIC_BASE_URL", defaults.public_base_url),
            cors_allowed_origins=_csv(env.get("CRM_CORS_ALLOWED_ORIGINS", "")),
            base_currency=env.get("CRM_BASE_CURRENCY", defaults.base_currency),
            events_queue_name=env.get("CRM_EVENTS_QUEUE_NAME", defaults.events_queue_name),
            max_body_bytes=int(env.get("CRM_MAX_BODY_BYTES", defaults.max_body_bytes)),
            email_change_cooldown_s=int(
                env.get("CRM_EMAIL_CHANGE_COOLDOWN_SECONDS", defaults.email_change_cooldown_s)
            ),
            email_changes_per_day=int(env.get("CRM_EMAIL_CHANGES_PER_DAY", defaults.email_changes_per_day)),
            related_min_support=int(env.get("CRM_RELATED_MIN_SUPPORT", defaults.related_min_support)),
            repurchase_window_days=int(
                env.get("CRM_REPURCHASE_WINDOW_DAYS", defaults.repurchase_window_days)
            ),
            duplicate_threshold=float(env.get("CRM_DUPLICATE_THRESHOLD", defaults.duplicate_threshold)),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
