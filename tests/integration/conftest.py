import pytest


@pytest.fixture(autouse=True)
def _streams_from_now(request):
    # Consumer tests read the streams: each sees only its own records.
    if "tables" in request.fixturenames:
        request.getfixturevalue("streams_from_now")


@pytest.fixture
def pump(chalice_app, tables, dynamodb_backend):
    """The local event pump over the app's consumers, for `pump.drain()` in a test."""
    from chalicelib.local.pump import EventPump

    if dynamodb_backend == "moto":
        return EventPump(chalice_app, poll_interval=0.01)  # `tables` emptied moto's streams
    # DynamoDB Local keeps earlier tests' records: the first poll takes the positions now. It
    # never swaps a shard, so the pump follows NextShardIterator there, as `make run` does.
    pump = EventPump(chalice_app, poll_interval=0.01, starting_position="LATEST", held_iterators=True)
    pump.poll_once(schedules=False)
    return pump
