#!/usr/bin/env python3
"""Validates recorded HTTP exchanges with the sandbox against GHL's official OpenAPI specs.

Usage: validate_exchanges.py SPEC_DIR EXCHANGES.json

Each exchange names the spec it belongs to ("contacts", "contacts-2025", "oauth"). Requests and
responses are validated with openapi-core (an independent implementation of OpenAPI 3.0).
Findings that match a documented deviation (the list below, mirrored in src/sandbox/mod.rs)
are reported as such; anything else fails the run.
"""

import json
import sys

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SERVER = "https://services.leadconnectorhq.com"

SPECS = {
    "contacts": "apps/contacts.json",
    "contacts-2025": "apps/contacts.2025-08-26.de87e88a.json",
    "oauth": "apps/oauth.json",
    "locations-tasks": "apps/locations.task-search.json",
    "locations-custom-fields": "apps/locations.custom-fields.json",
}

# (operation id, "request" | "response", text in the finding, why it is allowed)
DEVIATIONS = [
    ("create-contact", "request", "is not of type 'object'",
     "dateOfBirth / numeric custom field values are typed object; the spec's examples are strings and numbers"),
    ("upsert-contact", "request", "is not of type 'object'",
     "dateOfBirth / numeric custom field values are typed object; the spec's examples are strings and numbers"),
    ("update-contact", "request", "is not of type 'object'",
     "dateOfBirth / numeric custom field values are typed object; the spec's examples are strings and numbers"),
    ("create-association", "response", "is not of type 'string'",
     "bulk tag responses are objects, as in the spec's own example, not the declared strings"),
    ("*", "response", "Unknown response http status: 404",
     "the spec declares no 404; unknown ids answer 404 (real status unconfirmed)"),
    ("*", "response", "Unknown response http status: 429",
     "the spec declares no 429; GHL answers 429 past the rate limit (documented)"),
    ("*", "response", "Unknown response http status: 403",
     "the spec declares no 403; GHL answers 403 for another location's data (documented)"),
    ("*", "response", "Unknown response http status: 413",
     "the spec declares no 413; oversized bodies are refused before validation"),
    ("search-contacts-advanced", "response", "is not of type 'string'",
     "searchAfter cursors are [number, id], as in the spec's own example; the schema says string[]"),
    ("task-search", "response", "is not of type 'array'",
     "location task search answers task objects; the spec types tasks as an array of arrays"),
]


def load_specs(spec_dir):
    config = Config(spec_validator_cls=None)  # GHL's security schemes do not pass strict checks
    return {name: OpenAPI.from_file_path(f"{spec_dir}/{path}", config=config)
            for name, path in SPECS.items()}


def allowed(operation, phase, finding):
    for op, kind, text, _why in DEVIATIONS:
        if (op == "*" or op == operation) and kind == phase and text in finding:
            return True
    return False


def describe(error):
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    while cause is not None:
        parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__
    return " <- ".join(parts)


def main():
    spec_dir, path = sys.argv[1], sys.argv[2]
    specs = load_specs(spec_dir)
    with open(path) as f:
        exchanges = json.load(f)
    failures, deviations, checked = [], [], 0
    for ex in exchanges:
        spec = specs[ex["spec"]]
        body = ex.get("body")
        request = MockRequest(
            SERVER, ex["method"].lower(), ex["path"],
            args=ex.get("query") or {}, headers=ex.get("headers") or {},
            data=body.encode() if body is not None else None,
            content_type=ex.get("contentType") or "application/json",
        )
        response = MockResponse(
            ex["responseBody"].encode(), status_code=ex["status"],
            headers=ex.get("responseHeaders") or {}, content_type="application/json",
        )
        label = f'{ex["method"]} {ex["path"]} -> {ex["status"]} ({ex["operation"]})'
        for phase, check in (("request", lambda: spec.validate_request(request)),
                             ("response", lambda: spec.validate_response(request, response))):
            if phase == "request" and not ex.get("validRequest", True):
                continue  # deliberately invalid input, sent to test the sandbox's refusal
            checked += 1
            try:
                check()
            except Exception as error:  # openapi-core raises many specific classes
                finding = describe(error)
                if allowed(ex["operation"], phase, finding):
                    deviations.append(f"{label} {phase}: {finding[:160]}")
                else:
                    failures.append(f"{label} {phase}: {finding}")
    print(f"checked {checked} requests/responses of {len(exchanges)} exchanges; "
          f"{len(deviations)} documented deviations; {len(failures)} failures")
    for line in deviations:
        print(f"  deviation: {line}")
    for line in failures:
        print(f"  FAIL: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
