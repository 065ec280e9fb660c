"""The door's commands as a lead or a script uses them: keys, issuing, import, scan exit codes, sheets."""

import base64
import json
import subprocess
import sys

import zxingcpp
from click.testing import CliRunner
from PIL import Image

from checkin.keys import public_pem
from checkin.rehearsal import practice_tickets
from checkin.scans import set_mode
from kit.cli import cli


def run(*args, ok=True):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_keys_new_issue_png_and_scan_by_camera_reading(kit_env, tmp_path, door):
    out = run("tickets", "keys", "new", "--public-out", str(tmp_path / "pub.pem")).output
    assert "private key kept in" in out and (tmp_path / "pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    run("tickets", "issue", "--type", "Day pass", "--count", "3", "--out", str(tmp_path / "t"))
    pngs = sorted((tmp_path / "t").glob("ticket-*.png"))
    assert len(pngs) == 3
    rows = (tmp_path / "t" / "tickets.csv").read_text().splitlines()
    assert rows[0] == "Order code,Ticket type,Name,E-mail,Secret" and len(rows) == 4
    # What a camera reads off the printed ticket is exactly the signed code in the CSV.
    read = zxingcpp.read_barcodes(Image.open(pngs[0]).convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    assert read and read[0].text in {r.split(",")[-1] for r in rows[1:]}
    verdict = door.scan(read[0].text)
    assert verdict["verdict"] == "admit" and verdict["ticket_type"] == "Day pass"
    assert verdict["order_code"] == pngs[0].stem.removeprefix("ticket-")


def test_scan_command_exit_codes_in_a_real_process(kit_env, door):
    code = door.ticket(seed="CLIEXIT01")
    cmd = [sys.executable, "-c", "from kit.cli import main; main()"]
    first = subprocess.run([*cmd, "checkin", "scan", code, "--json", "--door", "Side door"], env=kit_env["env"],
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    verdict = json.loads(first.stdout)
    assert verdict["verdict"] == "admit" and verdict["door"] == "Side door"
    second = subprocess.run([*cmd, "checkin", "scan", code, "--json"], env=kit_env["env"], capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 2 and json.loads(second.stdout)["verdict"] == "already_in"
    assert "Side door" in json.loads(second.stdout)["reason"]


def test_keys_add_pretix_base64_and_file(kit_env, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = public_pem(Ed25519PrivateKey.generate().public_key())
    out = run("tickets", "keys", "add", "--pretix", base64.b64encode(pem.encode()).decode()).output
    assert "1 imported" in out
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"valid_keys": {"pretix_sig1": [base64.b64encode(pem.encode()).decode()]}}))
    assert "0 imported, 0 updated, 1 unchanged" in run("tickets", "keys", "add", "--pretix", str(event)).output
    bad = run("tickets", "keys", "add", "--pretix", "bm90IGEga2V5", ok=False)
    assert bad.exit_code == 1 and "neither a PEM nor" in bad.output
    assert "pretix" in run("tickets", "keys", "list").output


def test_import_with_format_and_skipped_rows(kit_env, tmp_path):
    f = tmp_path / "eb.csv"
    f.write_text("Order #,First Name,Last Name,Email,Ticket Type,Barcode #\n1,Ada,L,a@x.org,GA,111\n,,,,GA,\n")
    out = run("tickets", "import", str(f), "--format", "eventbrite").output
    assert "1 imported" in out and "row 3: skipped, no ticket code and no order code" in out
    assert "1 unchanged" in run("tickets", "import", str(f)).output


def test_rehearsal_sheet_tickets_produce_every_verdict(kit_env, tmp_path, door, config, db):
    out = run("checkin", "rehearsal-sheet", "--out", str(tmp_path / "sheet.html")).output
    assert "practice tickets" in out and "REHEARSAL ONLY" in (tmp_path / "sheet.html").read_text()
    with db.transaction() as conn:
        sheet = practice_tickets(conn, config.secrets_dir, door.rules)
    assert door.scan(sheet[0].payload)["verdict"] == "unknown"  # practice tickets do nothing outside rehearsal
    set_mode(db, door.ledger, rehearsal=True)
    got = [door.scan(t.payload)["verdict"] for t in sheet if t.payload]
    assert got == ["admit", "already_in", "admit", "revoked", "blocked", "not_yet_valid", "expired",
                   "invalid_signature", "unknown"]
    assert db.scalar("SELECT COUNT(*) FROM checkin_scans WHERE rehearsal = 1") == 9
    guests = run("checkin", "guestlist", "--out", str(tmp_path / "g.html")).output
    assert "(0 guests)" in guests and "Pat Practice" not in (tmp_path / "g.html").read_text()


def test_undo_rehearsal_and_stats_commands(kit_env, door):
    seq = door.scan(door.ticket(seed="STATS0001"))["seq"]
    assert ": 1 of 0 in, " in run("checkin", "stats").output
    assert run("checkin", "undo", str(seq), "--reason", "mistake").exit_code == 0
    assert run("checkin", "undo", str(seq), "--reason", "again", ok=False).exit_code == 2
    assert json.loads(run("checkin", "stats", "--json").output)["in"] == 0
    run("checkin", "rehearsal", "on")
    assert door.scan(door.ticket(seed="STATS0002"))["rehearsal"] is True
