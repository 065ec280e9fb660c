"""Schemathesis over HQ's served OpenAPI document, with a valid kit token: no 5xx, answers as documented.

Bounded: at most 25 examples per operation and generation mode (and kit variant), and a 60 s budget for the whole run.
Real HTTP to HQ under waitress on 127.0.0.1, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from sync.hq import documents, store
from sync.hq.testing import HQServer
from sync.hq.throttle import AuthThrottle
from tests.sync.test_hq_ingest import gz_lines, post
from tests.sync.test_hq_integrity import chained

MAX_EXAMPLES = 25
BUDGET_SECONDS = 60.0

schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # JSON lines go on the wire as text


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_in_hqs_api(hq_engine):
    # Negative cases send odd kit names (401): a lenient throttle lets them reach the handlers anyway.
    hq = HQServer(hq_engine, throttle=AuthThrottle(hq_engine, free_failures=100_000))
    try:
        _fuzz(hq)
    finally:
        hq.stop()


def _fuzz(hq: HQServer) -> None:
    token = store.add_kit(hq.engine, "door1", "market")
    admin = store.add_admin(hq.engine, "alice")
    documents.put_document(hq.engine, "pos.catalogue", b"sku,name,price\nTS,T-shirt,25.00\n", "catalogue.csv", site="market")
    assert post(hq, "door1", gz_lines(chained("door1", 30)), token)[0] == 200  # something to answer about
    schema = schemathesis.openapi.from_url(f"{hq.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13  # health, hwm, events, relayed events, personal, documents, one document,
    # relayed documents, one relayed document, report, status, bundle, fleet
    kit_auth = {"Authorization": f"Bearer {token}"}
    admin_auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{admin}".encode()).decode()}
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    tally = {"cases": 0, "server_errors": 0, "statuses": {}}
    failures: list[str] = []
    started = time.monotonic()

    def run(op, mode: GenerationMode, variant: str = "") -> None:
        # Half the negative cases keep the real kit (bad bodies, ids, queries reach the handlers); the
        # other half try odd kit names too.
        keep_kit = "{kit}" in op.path and (mode is GenerationMode.POSITIVE or variant == "kit")
        fixed = {"path_parameters": {"kit": "door1"}} if keep_kit else {}
        headers = admin_auth if op.path in ("/api/v1/report", "/api/v1/fleet") else kit_auth

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode, **fixed))
        def fuzz(case) -> None:
            if time.monotonic() - started > BUDGET_SECONDS:
                return
            response = case.call(base_url=hq.url, headers=headers, timeout=10)
            tally["cases"] += 1
            tally["statuses"][response.status_code] = tally["statuses"].get(response.status_code, 0) + 1
            if response.status_code >= 500:
                tally["server_errors"] += 1
                failures.append(f"{op.label} -> {response.status_code}: {response.text[:200]}")
            if mode is GenerationMode.POSITIVE:
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except (AssertionError, ExceptionGroup) as e:  # schemathesis' check failures
                    failures.append(f"{op.label}: {str(e)[:400]}")

        try:
            fuzz()
        except Unsatisfiable:  # negative mode on an operation without inputs: nothing to get wrong
            assert mode is GenerationMode.NEGATIVE, op.label

    for op in operations:
        run(op, GenerationMode.POSITIVE)
        run(op, GenerationMode.NEGATIVE, "kit")
        run(op, GenerationMode.NEGATIVE)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {tally['cases']} cases, {tally['server_errors']} server errors, "
          f"statuses {dict(sorted(tally['statuses'].items()))}, {elapsed:.1f} s")
    assert tally["server_errors"] == 0, failures
    assert not failures, failures[:10]
    assert tally["cases"] >= 100  # the run really exercised the API (not cut short by the budget)
