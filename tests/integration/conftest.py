import pytest


@pytest.fixture(autouse=True)
def _streams_from_now(request):
    # Consumer tests read the streams: each sees only its own records.
    if "tables" in request.fixturenames:
        request.getfixturevalue("streams_from_now")
