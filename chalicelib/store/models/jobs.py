"""The jobs table: GDPR erasure and export jobs, and which one runs for a customer."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class JobsByCustomerIndex(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by_customer"
        projection = AllProjection()

    customer_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class JobModel(Model):
    """A job: what was asked (kind, customer, by whom), its status and its result. Gone (TTL on
    `expires_at`) seven days after it was asked for, as an export's document is."""

    class Meta(TableMeta):
        table_name = settings.jobs_table

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    status = UnicodeAttribute()
    requested_by_subject = UnicodeAttribute()
    requested_by_role = UnicodeAttribute()
    route = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = TTLAttribute()
    completed_at = UnicodeAttribute(null=True)
    failed_at = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    document_key = UnicodeAttribute(null=True)
    size_bytes = NumberAttribute(null=True)
    slices = NumberAttribute(default=0)

    by_customer = JobsByCustomerIndex()


RUNNING_JOB_PREFIX = "running#"


class RunningJobModel(Model):
    """Which job of a kind runs for a customer: id `running#<kind>#<customer id>`, in the jobs
    table beside the jobs (not in by_customer: it has no customer_id; not queued: it has no
    status). Written with the job, conditional on no other job running; removed when the job
    finishes. So two requests at once never start two jobs of a kind for a customer."""

    class Meta(TableMeta):
        table_name = settings.jobs_table

    id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute()
    expires_at = TTLAttribute()
