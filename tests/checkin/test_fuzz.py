"""Any bytes from any source give a refusing verdict (never an exception) and leave the data intact."""

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkin.attendees import import_attendees
from checkin.documents import ATTENDEES
from kit.documents import DocumentError, import_document
from kit.ledger import verify

SIGNED_SHAPES = st.binary(min_size=5, max_size=120).map(
    lambda b: base64.b64encode(b"\x01" + len(b).to_bytes(2, "big") + b"\x00\x40" + b + bytes(64)).decode()[::-1])
ANY_PAYLOAD = st.one_of(st.binary(max_size=600), st.text(max_size=600), SIGNED_SHAPES,
                        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=", max_size=200))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=ANY_PAYLOAD)
def test_any_payload_is_refused_and_recorded(door, payload):
    result = door.scan(payload)
    assert result["verdict"] in ("unknown", "invalid_signature")
    assert result["colour"] == "red" and result["admitted"] is False


def test_ledger_is_intact_after_fuzzing(door):
    for junk in (b"\x00" * 100, "\ud800".encode("utf-8", "surrogatepass"), "é" * 3000, "==AB"):
        door.scan(junk)
    count, problems = verify(door.db)
    assert count == 4 and problems == []


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=400),
                      st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=8).map(
                          lambda rows: "\n".join(",".join(r) for r in [["Secret", "Name"], *rows]).encode())))
def test_any_csv_imports_or_is_refused_whole(config, db, data):
    try:
        import_document(config, db, ATTENDEES, data, "fuzz.csv", dry_run=True)
    except DocumentError:
        pass
    with db.transaction() as conn:
        try:
            import_attendees(conn, data, "fuzz.csv", config)
        except DocumentError:
            pass
        conn.execute("DELETE FROM checkin_tickets")
