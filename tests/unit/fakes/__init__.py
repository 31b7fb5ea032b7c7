"""In-memory repositories behind the ports of chalicelib/services/ports.py, for unit tests of
the services without AWS. They keep what the services rely on (versions, unique addresses and
identities, tombstones, pages with an opaque start key, all-or-nothing writes) and answer with
the exceptions of chalicelib/domain/storage.py, as the real repositories do. `rivals` on a fake
slips another request's write in just before its next write, to lose a race on purpose."""

from __future__ import annotations

from chalicelib.domain.audit import AuditEntry
from tests.unit.fakes.base import FakeTransaction, page
from tests.unit.fakes.campaigns import FakeCampaigns, FakeCampaignSends, FakeMarketingMailer
from tests.unit.fakes.co_purchases import FakeCoPurchases
from tests.unit.fakes.customers import FakeCustomers
from tests.unit.fakes.loyalty import FakeLoyalty
from tests.unit.fakes.others import (
    FakeAuditTrail,
    FakeDocuments,
    FakeIdempotencyRecords,
    FakeIdentities,
    FakeJobs,
    FakeMailer,
    FakeQueue,
)
from tests.unit.fakes.records import FakeCases, FakeInteractions, FakeProducts
from tests.unit.fakes.segments import FakeSegments

__all__ = [
    "FakeAuditTrail",
    "FakeCampaignSends",
    "FakeCampaigns",
    "FakeCases",
    "FakeCoPurchases",
    "FakeCustomers",
    "FakeDocuments",
    "FakeIdempotencyRecords",
    "FakeIdentities",
    "FakeInteractions",
    "FakeJobs",
    "FakeLoyalty",
    "FakeMailer",
    "FakeMarketingMailer",
    "FakeProducts",
    "FakeQueue",
    "FakeSegments",
    "FakeStore",
    "FakeTransaction",
    "page",
]


class FakeStore:
    """One set of fakes that know each other, as the tables do: a case or an interaction is
    written only while its customer exists, an erasure moves the loyalty aggregates."""

    def __init__(self) -> None:
        self.audit: list[AuditEntry] = []
        self.customers = FakeCustomers(self.audit)
        self.interactions = FakeInteractions(self.customers)
        self.cases = FakeCases(self.customers, self.interactions, self.audit)
        self.products = FakeProducts(self.audit)
        self.loyalty = FakeLoyalty(self.customers)
        self.co_purchases = FakeCoPurchases(self.customers)
        self.identities = FakeIdentities(self.customers, self.audit)
        self.jobs = FakeJobs()
        self.documents = FakeDocuments()
        self.audit_trail = FakeAuditTrail(self.audit)
        self.idempotency = FakeIdempotencyRecords()
        self.mailer = FakeMailer()
        self.follow_ups = FakeQueue()
        self.job_queue = FakeQueue()
        self.segments = FakeSegments(self.customers)
        self.segments_queue = FakeQueue()
        self.campaigns = FakeCampaigns()
        self.campaign_sends = FakeCampaignSends(self.interactions)
        self.marketing_mailer = FakeMarketingMailer()
        self.campaigns_queue = FakeQueue()
