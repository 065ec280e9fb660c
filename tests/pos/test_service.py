"""The pos service with the simulated printer and a real broker: queue, offline and back, bus print jobs."""

from __future__ import annotations

import threading

import pytest

from drivers.printer import SimulatedReceiptPrinter, profile_info, sim_folder
from drivers.printer_decode import text_lines
from kit import topics
from kit.testing import wait_for


@pytest.fixture
def service(ctx, pos_kit):
    from pos.service import run

    ctx.config = pos_kit.config.with_values(pos__printer__retry_seconds=0.2)
    sim = SimulatedReceiptPrinter(sim_folder(ctx.config))
    sim.set_state(online=False)
    t = threading.Thread(target=run, args=(ctx,), daemon=True)
    yield ctx, sim, t
    ctx.stopping.set()
    t.join(5)


def _printed_lines(path) -> list[str]:
    return text_lines(path.read_bytes(), profile_info("TM-T20II")["code_pages"])


def test_receipts_wait_while_the_printer_is_off_and_print_when_it_is_back(service, pos_kit, listen):
    ctx, sim, thread = service
    kit = ctx.config.kit_id
    rec = listen(f"fieldkit/{kit}/#")
    thread.start()
    # the service is up (it announces sales made from now on) and has found the printer switched off
    rec.wait(lambda msgs: any(t == topics.health(kit, "test") and "switched off" in p.get("reason", "") for t, p in msgs),
             what="the service running")
    a = pos_kit.sell("TS-L", "STICKER:2", pay=[{"method": "cash", "amount": "50.00"}]).sale
    b = pos_kit.sell("HOODIE-M", pay=[{"method": "card", "reference": "T-77", "amount": "45.00"}]).sale
    rec.wait(lambda msgs: any(t == topics.health(kit, "test") and p.get("state") == "degraded"
                              and "switched off" in p.get("reason", "") and p.get("queued") == 2 for t, p in msgs),
             what="degraded health with the reason")
    state = rec.on(topics.state(kit, "pos"))[-1]
    assert state["printer"] == "offline" and state["queued"] == 2
    assert sim.outputs() == []
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status='queued' AND attempts > 0") >= 1

    sim.set_state(online=True)
    wait_for(lambda: len(sim.outputs()) == 2, 10, what="both receipts printed")
    rec.wait(lambda msgs: any(t == topics.health(kit, "test") and p.get("state") == "ok" for t, p in msgs[-20:]),
             what="health ok again")
    first = _printed_lines(sim.outputs()[0])
    assert "Night Market" in first and f"Receipt {a['receipt']}" in first
    assert any(line.startswith("CHANGE") and line.endswith("21.00") for line in first)
    assert f"[QR {a['id']}]" in first
    second = _printed_lines(sim.outputs()[1])
    assert any(line.startswith("Card T-77") for line in second)
    wait_for(lambda: pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status='done'") == 2, 5,
             what="both jobs marked done")
    sales = rec.on(topics.event(kit, *topics.POS_SALE))
    assert [s["receipt"] for s in sales] == [a["receipt"], b["receipt"]]
    assert sales[0]["total_cents"] == 2900 and sales[0]["items"] == [{"sku": "TS-L", "qty": 1}, {"sku": "STICKER", "qty": 2}]


def test_other_features_print_over_the_bus_and_bad_jobs_are_rejected(service, listen):
    ctx, sim, thread = service
    sim.set_state(online=True)
    kit = ctx.config.kit_id
    rec = listen(topics.event(kit, "pos", "print"))
    thread.start()
    sheet = {"id": "rehearsal-1", "source": "checkin", "lines": [
        {"text": "REHEARSAL TICKETS", "align": "center", "bold": True, "size": "double"},
        {"qr": "TEST-TICKET-VALID"}, {"text": "valid"}, {"cut": True}]}


    def answered(rid: str) -> bool:
        # A sender repeats its command until it hears back (the service may still be subscribing);
        # a repeated id prints once.
        for _ in range(20):
            ctx.bus.publish(topics.cmd(kit, *topics.POS_PRINT), sheet if rid == sheet["id"] else
                            {"id": rid, "lines": [{"text": 3}]}, qos=1)
            try:
                return rec.wait(lambda msgs: any(p.get("id") == rid for _, p in msgs), timeout=0.5)
            except TimeoutError:
                continue
        return False

    assert answered("rehearsal-1") and answered("bad-1")
    ctx.bus.publish(topics.cmd(kit, *topics.POS_PRINT), sheet, qos=1)
    rec.wait(lambda msgs: any(p.get("id") == "rehearsal-1" and p.get("status") == "printed" for _, p in msgs),
             what="printed answer")
    rec.wait(lambda msgs: any(p.get("id") == "bad-1" and p.get("status") == "rejected" for _, p in msgs),
             what="rejected answer")
    wait_for(lambda: sim.outputs(), 5)
    assert len(sim.outputs()) == 1
    lines = _printed_lines(sim.outputs()[0])
    assert lines[:2] == ["REHEARSAL TICKETS", "[QR TEST-TICKET-VALID]"]
    bad = next(p for _, p in rec.messages if p.get("id") == "bad-1")
    assert "text must be a string" in bad["error"]


def test_reprint_prints_a_marked_copy(service, pos_kit, listen):
    ctx, sim, thread = service
    sim.set_state(online=True)
    kit = ctx.config.kit_id
    thread.start()
    s = pos_kit.sell("TOTE").sale
    wait_for(lambda: len(sim.outputs()) == 1, 10)
    reply = ctx.bus.request("pos", "reprint", {"receipt": s["receipt"]})
    assert reply and reply["status"] == "queued"
    wait_for(lambda: len(sim.outputs()) == 2, 10)
    copy = _printed_lines(sim.outputs()[1])
    assert copy[0] == "*** COPY ***" and f"Receipt {s['receipt']}" in copy
    assert kit


def test_a_catalogue_from_hq_is_imported_by_the_service(service, pos_kit, tmp_path):
    ctx, sim, thread = service
    thread.start()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("sku,name,price\nEVIL,Evil,1.00\n")
    ctx.bus.publish(topics.event(ctx.config.kit_id, *topics.SYNC_DOCUMENT), {"kind": "pos.catalogue", "path": str(outside)})
    path = ctx.config.data_dir / "sync" / "documents" / "pos.catalogue" / "hq-catalogue.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sku,name,price\nCAP,Cap,15.00\n")

    def imported() -> bool:
        return pos_kit.db.scalar("SELECT price_cents FROM pos_products WHERE sku='CAP'") == 1500

    for _ in range(20):  # announced again until it lands, as the service may still be subscribing
        ctx.bus.publish(topics.event(ctx.config.kit_id, *topics.SYNC_DOCUMENT),
                        {"kind": "pos.catalogue", "path": str(path), "version": 3, "source_version": "hq-7"}, qos=1)
        try:
            wait_for(imported, 0.5)
            break
        except TimeoutError:
            continue
    assert imported()
    row = pos_kit.db.query_one("SELECT source, source_version FROM kit_documents WHERE kind='pos.catalogue' ORDER BY version DESC")
    assert (row["source"], row["source_version"]) == ("hq", "hq-7")
    assert pos_kit.db.scalar("SELECT COUNT(*) FROM pos_products WHERE sku='EVIL'") == 0


def test_doctor_warns_with_a_fix_when_the_usb_printer_is_missing(config):
    from pos.doctor import check_printer

    checks = {c.name: c for c in check_printer(config.with_values(kit__simulate=False, pos__printer__backend="usb"))}
    assert checks["printer profile"].level == "OK"
    assert checks["printer"].level == "WARN"
    assert "USB" in checks["printer"].message or "pyusb" in checks["printer"].message
    assert "plug in" in checks["printer"].fix or "python3-usb" in checks["printer"].fix
    sim = {c.name: c for c in check_printer(config)}
    assert sim["printer"].level == "OK" and "Simulated" in sim["printer"].message


def test_a_second_pos_service_does_not_print_the_same_receipts(service, pos_kit, listen):
    from pos.service import run

    ctx, sim, thread = service
    sim.set_state(online=True)
    thread.start()
    wait_for(lambda: ctx.health_detail.get("printer") == "online", 5, what="the first service owns the printer")
    from kit.service import make_context

    second = make_context("pos2", ctx.config)
    assert second.bus.start(wait=5)
    rec = listen(topics.health(ctx.config.kit_id, "pos2"))
    t2 = threading.Thread(target=run, args=(second,), daemon=True)
    t2.start()
    try:
        rec.wait(lambda msgs: any("another pos service" in p.get("reason", "") for _, p in msgs), what="second waits")
        pos_kit.sell("TOTE")
        wait_for(lambda: pos_kit.db.scalar("SELECT status FROM pos_print_jobs") == "done", 10, what="receipt printed")
        assert pos_kit.db.scalar("SELECT attempts FROM pos_print_jobs") == 1  # printed once, by the first
        assert len(sim.outputs()) == 1
    finally:
        second.stopping.set()
        t2.join(10)
        second.bus.stop()
        second.db.close()


def test_a_job_that_cannot_be_printed_is_set_aside_and_the_queue_goes_on(service, pos_kit):
    from pos import printqueue

    ctx, sim, thread = service
    sim.set_state(online=True)
    with pos_kit.db.transaction() as conn:  # written straight to the queue, past the bus checks
        printqueue.enqueue(conn, "broken-1", "test", "broken", [{"text": "x", "align": "diagonal"}])
    sale = pos_kit.sell("TOTE").sale
    thread.start()
    wait_for(lambda: pos_kit.db.scalar("SELECT status FROM pos_print_jobs WHERE receipt = ?", (sale["receipt"],)) == "done",
             10, what="the receipt behind the broken job printed")
    bad = pos_kit.db.query_one("SELECT status, last_error FROM pos_print_jobs WHERE job_key = 'broken-1'")
    assert bad["status"] == "failed" and "cannot render" in bad["last_error"]
    assert len(sim.outputs()) == 1
