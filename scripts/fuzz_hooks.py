"""Schemathesis hooks of scripts/fuzz-api.sh (loaded through SCHEMATHESIS_HOOKS).

Generated account ids are random UUIDs, so without help nearly every
generated POST /v1/transfers answered 404 and the transfer itself (debit,
credit, insufficient funds, idempotent replay) was never fuzzed. This hook
points three of every four generated transfers at accounts that exist
(FUZZ_ACCOUNT_IDS, created by fuzz-api.sh); the fourth keeps its random
accounts, so the 404 path stays covered.

Only a `from` or `to` that is already a valid UUID is replaced, by another
valid UUID, so a request keeps its validity against the schema: a negative
case (a bad amount, an unknown field, a bad key) stays negative. The choice
is a function of the generated values, not of a random draw, so a failure
found by hypothesis reproduces.
"""

import os
import uuid

import schemathesis

ACCOUNTS = [a for a in os.environ.get("FUZZ_ACCOUNT_IDS", "").split(",") if a]


def _as_uuid(value):
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = case.operation
    if len(ACCOUNTS) < 2 or operation.method.upper() != "POST" or operation.path != "/v1/transfers":
        return
    body = case.body
    if not isinstance(body, dict):
        return
    source, target = _as_uuid(body.get("from")), _as_uuid(body.get("to"))
    if source is None or target is None or source.int % 4 == 0:
        return
    n = len(ACCOUNTS)
    first = source.int % n
    second = target.int % n
    if second == first:
        second = (first + 1) % n
    case.body = {**body, "from": ACCOUNTS[first], "to": ACCOUNTS[second]}


@schemathesis.check
def refuses_credentials(ctx, response, case):
    """Active in fuzz-api.sh's unauthenticated runs (FUZZ_EXPECT_401=1):
    every /v1 operation answers 401 with a Bearer challenge."""
    if os.environ.get("FUZZ_EXPECT_401") != "1":
        return None
    # The coverage phase also sends methods the route does not have; those
    # are 405 before any authentication, which says nothing about an account.
    if case.method.upper() != case.operation.method.upper():
        return None
    if response.status_code != 401:
        raise AssertionError(f"{case.method} {case.path}: expected 401 without valid credentials, got {response.status_code}")
    challenge = response.headers.get("www-authenticate", "")
    if isinstance(challenge, list):
        challenge = challenge[0] if challenge else ""
    if not challenge.startswith("Bearer"):
        raise AssertionError(f"{case.method} {case.path}: 401 without a Bearer WWW-Authenticate ({challenge!r})")
    return None
