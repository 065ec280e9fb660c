"""Reference documents at the edges: a CSV field over the csv module's 128 KiB limit and JSON bodies that
are not objects are refused with a message (CLI in a real process, dashboard over the Flask test client)."""

import io
import re
import subprocess
import sys

import pytest

from kit.documents import current_documents
from kit.web.app import create_app

BIG_FIELD_CSV = b"sku,name,price,stock\nTEE-L,T-shirt L,25.00,10\nLONG," + b'"' + b"x" * (200 * 1024) + b'"' + b",5.00,1\n"


@pytest.fixture
def lead(ctx, kit_env):
    app = create_app(ctx)
    app.testing = True
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"pin": kit_env["pins"]["lead"], "csrf_token": token})
    client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/documents").get_data(as_text=True)).group(1)
    return client


@pytest.mark.parametrize("kind", ["pos.catalogue", "checkin.attendees"])
def test_cli_refuses_a_csv_with_a_huge_field_cleanly(kit_env, tmp_path, kind):
    path = tmp_path / "big.csv"
    path.write_bytes(BIG_FIELD_CSV.replace(b"sku,name,price,stock", b"sku,name,price,stock,ticket code,order")
                     if kind == "checkin.attendees" else BIG_FIELD_CSV)
    r = subprocess.run([sys.executable, "-m", "kit", "documents", "import", kind, str(path)], env=kit_env["env"],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out, out
    assert "big.csv: line" in out and "cannot be read as CSV" in out and "field larger than field limit" in out


def test_dashboard_preview_refuses_a_csv_with_a_huge_field(lead, ctx):
    r = lead.post("/api/v1/documents/preview", headers={"X-CSRF-Token": lead.csrf},
                  data={"kind": "pos.catalogue", "file": (io.BytesIO(BIG_FIELD_CSV), "big.csv")},
                  content_type="multipart/form-data")
    assert r.status_code == 400 and "cannot be read as CSV" in r.json["error"]
    assert current_documents(ctx.db) == []


@pytest.mark.parametrize("body", ["[]", '["token"]', '"abc"', "7", "null", '{"token": 5}', '{"token": ["a"]}',
                                  "[" * 3000 + "]" * 3000])
def test_document_import_with_a_body_that_is_not_an_object_is_a_400(lead, body):
    r = lead.post("/api/v1/documents/import", data=body, content_type="application/json",
                  headers={"X-CSRF-Token": lead.csrf})
    assert r.status_code == 400 and "JSON object" in r.json["error"]


@pytest.mark.parametrize("body", ["[1]", '"now"', "10", '{"now_ms": 1e400}', '{"now_ms": ' + "9" * 500 + "}"])
def test_clock_with_a_bad_body_is_a_400(lead, body):
    r = lead.post("/api/v1/clock", data=body, content_type="application/json", headers={"X-CSRF-Token": lead.csrf})
    assert r.status_code == 400 and r.json["error"]


def test_openapi_names_the_real_session_cookie(lead, ctx):
    spec = lead.get("/api/v1/openapi.json").json
    assert spec["components"]["securitySchemes"]["session"]["name"] == "fieldkit_session"
    assert lead.get_cookie("fieldkit_session") is not None


@pytest.mark.parametrize("url,body", [
    ("/api/v1/checkin/undo", '{"seq": 100000000000000000000000000000}'),  # beyond SQLite's 64-bit INTEGER
    ("/api/v1/checkin/undo", '{"seq": 1, "reason": "\\ud9c9"}'),  # a lone surrogate: no valid UTF-8
    ("/api/v1/documents/import", '{"token": "\\udc00abc"}'),
])
def test_hostile_numbers_and_text_in_any_json_body_are_a_400(lead, url, body):
    r = lead.post(url, data=body, content_type="application/json", headers={"X-CSRF-Token": lead.csrf})
    assert r.status_code == 400 and r.json["error"]
