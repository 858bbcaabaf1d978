"""Fuzzing the OpenAPI schema with schemathesis: no generated request may get a 5xx.

Every operation is called in-process (ASGI) with a valid key; the memory routes get the id of a
real memory holding messages, so fuzzed bodies reach ``Memory`` (DELETE keeps fuzzed ids, so the
memory survives). Examples are bounded and derandomized so the run stays under a minute and repeats.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from hsa_memory.service.routes import router

from .conftest import bearer, make_service

# examples per operation (14 operations)
EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, tiny_loaded):
    svc = make_service(tmp_path_factory.mktemp("fuzz"), tiny_loaded, max_new_tokens=4, max_body_bytes=64 * 1024,
                       max_import_bytes=256 * 1024, max_append_chars=2000, max_batch_messages=5, ask_wait_seconds=30)
    state = svc.app.state.service
    memory_id = "00000000-0000-4000-8000-000000000001"
    state.pool.create(memory_id)
    state.catalog.add_memory("tenant-a", "fuzzed", memory_id)
    state.pool.call_blocking(memory_id, lambda m: m.extend(
        [{"content": f"Message {i}: the meeting moved to room {i}. " * 6, "metadata": {"i": i}} for i in range(3)]))
    svc.memory_id = memory_id
    return svc


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)


def strategy(operation):
    """Valid requests, and requests that break the schema, of one operation."""
    modes = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            modes.append(operation.as_strategy(generation_mode=mode))
        except Exception:  # an operation without parameters has no invalid form
            continue
    return st.one_of(modes)


# schemathesis' pytest plugin (schema.parametrize, from_fixture) reads Item._nodeid, which pytest 9
# no longer has; hypothesis drives the operation strategies directly instead
@pytest.mark.parametrize("method,path", sorted((m, r.path) for r in router.routes for m in r.methods))
def test_no_server_errors(api_schema, fuzzed, method, path):
    operation = api_schema[path][method]

    @given(case=strategy(operation))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        if "memory_id" in (case.path_parameters or {}) and method != "DELETE":
            case.path_parameters["memory_id"] = fuzzed.memory_id
        response = case.call(headers=bearer(fuzzed.key_a))
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance])

    run()
