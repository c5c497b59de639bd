"""Generated requests against every operation of the API's own OpenAPI document, in process.

Checks: no server error; every status is one the document declares for the operation; every
body matches its declared schema; a 4xx answer wrote nothing (store tables and registry compared
before and after)."""

from __future__ import annotations

import pytest
import schemathesis
from fuzz_budget import count, max_examples
from fuzz_kit import settle, snapshot
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

schema = schemathesis.pytest.from_fixture("api_schema")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.fuzz
@pytest.mark.timeout(max(900, 20 * max_examples()))
@schema.parametrize()
def test_api_answers_as_documented_and_bad_input_writes_nothing(case, fuzz_instance) -> None:
    settle(fuzz_instance)
    before = snapshot(fuzz_instance)
    response = case.call()
    count(response.status_code)
    case.validate_response(response, checks=CHECKS)
    if 400 <= response.status_code < 500:
        settle(fuzz_instance)
        after = snapshot(fuzz_instance)
        changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
        assert not changed, f"{case.method} {case.formatted_path} answered {response.status_code} but changed {changed}"
