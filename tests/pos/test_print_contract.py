"""The print jobs other parts of the kit really send on pos/cmd/print are accepted and print what they say.

The door's rehearsal sheet and the appliance's setup slip are built by their own code here, validated
by the pos service's checks and rendered to ESC/POS bytes, then read back like paper.
"""

from __future__ import annotations

from checkin.rehearsal import PracticeTicket, sheet_print_job
from drivers.printer import profile_info, render
from drivers.printer_decode import text_lines
from kit.appliance.slip import SetupInfo, slip_payload
from pos.layout import validate_document

TICKET_QR = "=" * 2 + "A" * 110  # the length of a pretix signed ticket code


def _paper(payload: dict, profile: str = "TM-T20II") -> list[str]:
    lines = validate_document(payload)
    return text_lines(render(lines, profile), profile_info(profile)["code_pages"])


def test_rehearsal_sheet_from_the_door_prints():
    sheet = [PracticeTicket("Valid ticket", TICKET_QR, "GREEN — admit (verdict admit)"),
             PracticeTicket("Garbage", "", "RED — not a ticket", how="show any QR code that is not a ticket")]
    paper = _paper(sheet_print_job(sheet, "Door 1", "job-1"))
    assert paper[0] == "REHEARSAL ONLY"
    assert "1. Valid ticket" in paper and f"[QR {TICKET_QR}]" in paper
    assert "Expect: GREEN — admit (verdict admit)" in paper
    assert paper[-1] == "[CUT]"


def test_setup_slip_from_the_appliance_prints_on_a_58mm_printer_too():
    info = SetupInfo("kit7", "market", "Night Market", "fieldkit-kit7", "pw-4829-xq", "http://10.42.0.1:8080/", "482913")
    for profile in ("TM-T20II", "NT-5890K"):
        paper = _paper(slip_payload(info, "slip-1"), profile)
        assert paper[0] == "FIELD KIT SETUP"
        assert "Password: pw-4829-xq" in paper and "482913" in paper
        assert "[QR http://10.42.0.1:8080/]" in paper  # native on 80 mm, a raster picture read back on 58 mm
