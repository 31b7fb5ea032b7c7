"""Co-purchase repository: each SKU's distinct buyers and pair counts (anonymous, under
PRODUCT#<sku>), and the guards under CUSTOMER#<id> that count each customer's SKUs once.

A transaction checks that the customer's profile exists, writes one guard conditional on its
absence and ADDs to the counts, so a replayed write changes nothing: AlreadyExists. The guards
are the customer's items, so the purge of a deleted customer takes them; the counts stay."""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import TransactWriteError

from chalicelib.domain import storage
from chalicelib.domain.recommendations import PARTNERS_PER_WRITE
from chalicelib.store.keys import (
    BOUGHT_PREFIX,
    BUYERS_SK,
    PAIR_PREFIX,
    PAIRED_PREFIX,
    POPULAR_PREFIX,
    POPULAR_SHARDS,
    PRODUCT_PREFIX,
    PROFILE_SK,
    UNPAIRED_PREFIX,
    customer_pk,
    popular_pk,
)
from chalicelib.store.models import BoughtModel, BuyersModel, CustomerModel, PairModel
from chalicelib.store.pagination import Key, query_page
from chalicelib.store.transactions import failed_conditions, transaction


def product_pk(sku: str) -> str:
    return f"{PRODUCT_PREFIX}{sku}"


class CoPurchaseRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def bought(self, customer_id: str) -> set[str]:
        """The SKUs whose counts hold this customer (a strongly consistent Query)."""
        query = BoughtModel.query(
            customer_pk(customer_id),
            BoughtModel.sk.startswith(BOUGHT_PREFIX),
            consistent_read=True,
            attributes_to_get=["sk"],
        )
        return {item.sk.removeprefix(BOUGHT_PREFIX) for item in query}

    def paired(self, customer_id: str, sku: str) -> dict[int, set[str]]:
        """The chunks of the SKU's pairs already counted for this customer, by chunk number."""
        prefix = f"{PAIRED_PREFIX}{sku}#"
        query = BoughtModel.query(
            customer_pk(customer_id), BoughtModel.sk.startswith(prefix), consistent_read=True
        )
        return {int(item.sk.removeprefix(prefix)): set(item.partners or ()) for item in query}

    def count_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        """Add one to (sku, p) and (p, sku) for each partner, once: AlreadyExists if this chunk
        was counted, ConditionFailed if the customer has no profile."""
        partners = sorted(partners)
        self._write(
            customer_id, BoughtModel(customer_pk(customer_id), f"{PAIRED_PREFIX}{sku}#{chunk}"), partners, sku
        )

    def count_buyer(self, customer_id: str, sku: str, partners: Iterable[str] = ()) -> None:
        """Add one to the SKU's buyers and to the pairs of the last `partners`, once."""
        guard = BoughtModel(customer_pk(customer_id), f"{BOUGHT_PREFIX}{sku}")
        self._write(customer_id, guard, sorted(partners), sku, buyer=True)

    def _write(
        self, customer_id: str, guard: BoughtModel, partners: list[str], sku: str, buyer: bool = False
    ) -> None:
        if len(partners) > PARTNERS_PER_WRITE:
            raise ValueError(f"at most {PARTNERS_PER_WRITE} partners a transaction")
        # Only a chunk's guard needs its partners (a replay reads them); BOUGHT# is the SKU's end.
        guard.partners = (set(partners) or None) if not buyer else None
        try:
            with transaction(self._region) as t:
                t.condition_check(
                    CustomerModel, customer_pk(customer_id), PROFILE_SK, condition=CustomerModel.pk.exists()
                )
                t.save(guard, condition=BoughtModel.pk.does_not_exist())
                if buyer:
                    t.update(
                        BuyersModel(product_pk(sku), BUYERS_SK),
                        actions=[BuyersModel.buyers.add(1), BuyersModel.popular_pk.set(popular_pk(sku))],
                    )
                for one, other in [(sku, p) for p in partners] + [(p, sku) for p in partners]:
                    t.update(
                        PairModel(product_pk(one), f"{PAIR_PREFIX}{other}"),
                        actions=[PairModel.co_purchases.add(1), PairModel.pair_of.set(one)],
                    )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise storage.ConditionFailed(customer_id) from error
            if any(failed):
                raise storage.AlreadyExists(guard.sk) from error
            raise

    # A merge withdraws what the merged customer counted (services/merge_job.py): the
    # survivor's own consumer counts the moved purchases as any of theirs, so the counts end as
    # if one customer had made the purchases of both.

    def guards_of(self, customer_id: str) -> tuple[set[str], dict[str, dict[int, set[str]]]]:
        """The customer's BOUGHT# SKUs and PAIRED# chunks (SKU → chunk → partners), strongly
        consistent."""
        bought: set[str] = set()
        paired: dict[str, dict[int, set[str]]] = {}
        for item in BoughtModel.query(customer_pk(customer_id), consistent_read=True):
            if item.sk.startswith(BOUGHT_PREFIX):
                bought.add(item.sk.removeprefix(BOUGHT_PREFIX))
            elif item.sk.startswith(PAIRED_PREFIX):
                sku, _, chunk = item.sk.removeprefix(PAIRED_PREFIX).rpartition("#")
                paired.setdefault(sku, {})[int(chunk)] = set(item.partners or ())
        return bought, paired

    def withdrawn_chunks(self, customer_id: str, sku: str) -> set[int]:
        prefix = f"{UNPAIRED_PREFIX}{sku}#"
        query = BoughtModel.query(
            customer_pk(customer_id), BoughtModel.sk.startswith(prefix), consistent_read=True
        )
        return {int(item.sk.removeprefix(prefix)) for item in query}

    def withdraw_paired(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        """A PAIRED# chunk goes, and the pairs it counted are taken back (`partners` empty:
        the chunk belongs to a SKU whose BOUGHT# is withdrawn with all its pairs). Conditional
        on the chunk's presence: AlreadyExists (withdrawn before) otherwise."""
        guard = BoughtModel(customer_pk(customer_id), f"{PAIRED_PREFIX}{sku}#{chunk}")
        self._withdraw(
            customer_id, sku, sorted(partners), lambda t: t.delete(guard, condition=BoughtModel.pk.exists())
        )

    def withdraw_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        """Take back a chunk of the pairs of a BOUGHT# SKU, once (guard UNPAIRED#<sku>#<chunk>):
        ConditionFailed if the SKU's BOUGHT# is gone (withdrawn whole), AlreadyExists if the
        chunk was withdrawn."""

        def guarded(t) -> None:
            t.condition_check(
                BoughtModel,
                customer_pk(customer_id),
                f"{BOUGHT_PREFIX}{sku}",
                condition=BoughtModel.pk.exists(),
            )
            t.save(
                BoughtModel(customer_pk(customer_id), f"{UNPAIRED_PREFIX}{sku}#{chunk}"),
                condition=BoughtModel.pk.does_not_exist(),
            )

        self._withdraw(customer_id, sku, sorted(partners), guarded, checks_bought=True)

    def withdraw_buyer(self, customer_id: str, sku: str, partners: Iterable[str]) -> None:
        """The SKU's BOUGHT# goes with one of its buyers and the last chunk of its pairs:
        AlreadyExists if it went before."""
        guard = BoughtModel(customer_pk(customer_id), f"{BOUGHT_PREFIX}{sku}")

        def guarded(t) -> None:
            t.delete(guard, condition=BoughtModel.pk.exists())
            t.update(BuyersModel(product_pk(sku), BUYERS_SK), actions=[BuyersModel.buyers.add(-1)])

        self._withdraw(customer_id, sku, sorted(partners), guarded)

    def _withdraw(
        self, customer_id: str, sku: str, partners: list[str], guarded, *, checks_bought: bool = False
    ) -> None:
        if len(partners) > PARTNERS_PER_WRITE:
            raise ValueError(f"at most {PARTNERS_PER_WRITE} partners a transaction")
        try:
            with transaction(self._region) as t:
                guarded(t)
                for one, other in [(sku, p) for p in partners] + [(p, sku) for p in partners]:
                    t.update(
                        PairModel(product_pk(one), f"{PAIR_PREFIX}{other}"),
                        actions=[PairModel.co_purchases.add(-1)],
                    )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if not any(failed):
                raise
            if checks_bought and failed[0]:  # condition checks come first: the BOUGHT# is gone
                raise storage.ConditionFailed(customer_id) from error
            raise storage.AlreadyExists(sku) from error

    def buyers(self, skus: Iterable[str]) -> dict[str, int]:
        """The distinct buyers of each SKU (absent: none), in one BatchGetItem."""
        keys = [(product_pk(sku), BUYERS_SK) for sku in dict.fromkeys(skus)]
        return {
            item.pk.removeprefix(PRODUCT_PREFIX): int(item.buyers) for item in BuyersModel.batch_get(keys)
        }

    def pairs(
        self, sku: str, at_least: int, limit: int, start: Key | None
    ) -> tuple[list[tuple[str, int]], Key | None]:
        """The SKUs bought with `sku` by at least `at_least` customers, most first: one Query of
        GSI by_co_purchases."""
        return query_page(
            PairModel.by_co_purchases.query,
            sku,
            PairModel.co_purchases >= at_least,
            limit=limit,
            start=start,
            key_of=_pair_key,
            to_domain=lambda item: (item.sk.removeprefix(PAIR_PREFIX), int(item.co_purchases)),
            scan_index_forward=False,
        )

    def popular(self, limit: int) -> list[tuple[str, int]]:
        """The `limit` most-bought SKUs, most buyers first: the top `limit` of each shard of
        GSI by_buyers, merged. POPULAR_SHARDS Queries whatever the catalogue's
        size, as the top `limit` overall are among the top `limit` of their own shards."""
        found: list[tuple[str, int]] = []
        for shard in range(POPULAR_SHARDS):
            rows = BuyersModel.by_buyers.query(
                f"{POPULAR_PREFIX}{shard}", scan_index_forward=False, limit=limit
            )
            found += [(item.pk.removeprefix(PRODUCT_PREFIX), int(item.buyers)) for item in rows]
        return sorted(found, key=lambda row: (-row[1], row[0]))[:limit]


def _pair_key(item: PairModel) -> Key:
    # LastEvaluatedKey of an index: the table's keys and the index's.
    return {
        "pk": {"S": item.pk},
        "sk": {"S": item.sk},
        "pair_of": {"S": item.pair_of},
        "co_purchases": {"N": str(int(item.co_purchases))},
    }
