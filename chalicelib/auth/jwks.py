"""The signing keys of a Cognito user pool: its JSON Web Key Set, fetched and cached.

PyJWT's ``PyJWKClient`` is not used: a failed refresh there raises instead of keeping the
cached keys, refreshes on expiry and after failures are not rate-limited, its cache runs on
``time.monotonic`` (no clock to inject), the body is read without a size cap, and it keeps
keys of any type and algorithm.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt

from chalicelib.auth.principal import AuthError

logger = logging.getLogger(__name__)

RS256 = "RS256"

# An unknown ``kid`` refetches the key set, but no more often than this.
MIN_REFETCH_SECONDS = 60.0
# While no key set was ever fetched successfully, retry sooner than that.
EMPTY_CACHE_RETRY_SECONDS = 5.0
JWKS_FETCH_TIMEOUT_SECONDS = 3.0
MAX_JWKS_BYTES = 512 * 1024


class JWKSUnavailableError(AuthError):
    """The signing keys could not be fetched and none are cached. The token may be
    fine; the caller may answer 503 instead of 401 if it tells the two apart."""


def fetch_jwks_document(url: str) -> dict[str, Any]:
    """GET a JSON Web Key Set (the default fetcher of ``JWKSVerifier``)."""
    import urllib.parse
    import urllib.request

    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError("the JWKS URL must be http(s)")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    with urllib.request.urlopen(request, timeout=JWKS_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("the JWKS document is too large")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise TypeError("the JWKS document is not a JSON object")
    return document


def signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    """The RS256 signing keys of a JWKS document, by ``kid``; other keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TypeError("the JWKS document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", RS256) != RS256:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=RS256)
        except jwt.PyJWTError:
            logger.warning("skipping an unusable JWKS key (kid %r)", kid)
    if not keys:
        raise ValueError("the JWKS document has no usable RS256 signing key")
    return keys


class CachedKeySet:
    """The keys at ``url``, cached for ``cache_seconds`` (timed by ``clock``).

    An unknown ``kid`` refetches the set, at most once per ``MIN_REFETCH_SECONDS``. If a
    refetch fails the cached keys stay in use; while none were ever fetched, a fetch is
    retried after ``EMPTY_CACHE_RETRY_SECONDS``. One lock: concurrent first requests fetch once.
    """

    def __init__(
        self,
        url: str,
        fetch: Callable[[str], dict],
        cache_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._fetch = fetch
        self._cache_seconds = float(cache_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._fetched_at >= self._cache_seconds
            if stale and self._may_fetch(now):
                self._refresh(now)
            if self._keys is None:
                raise JWKSUnavailableError("token signing keys are unavailable")
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._refresh(now)
                key = self._keys.get(kid)
            if key is None:
                raise AuthError("token signing key is unknown")
            return key

    def _may_fetch(self, now: float) -> bool:
        if self._attempted_at is None:
            return True
        wait = MIN_REFETCH_SECONDS if self._keys is not None else EMPTY_CACHE_RETRY_SECONDS
        return now - self._attempted_at >= wait

    def _refresh(self, now: float) -> None:
        """Fetch the key set; on failure keep whatever is cached. Caller holds the lock."""
        self._attempted_at = now
        try:
            keys = signing_keys(self._fetch(self._url))
        # Network, HTTP, JSON, content or injected-fetcher errors are all the same
        # to us: keep the cached keys (if any) and try again later.
        except Exception as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s); %s",
                self._url,
                type(exc).__name__,
                "keeping cached keys" if self._keys is not None else "no keys cached",
            )
            return
        self._keys = keys
        self._fetched_at = now
