"""Printed jobs leave the database after pos.print_retention_hours, a pruned receipt still reprints,
the pages come back to the file system, and the receipt's QR on screen scans to the sale."""

from __future__ import annotations

import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from drivers.printer import SimulatedReceiptPrinter, profile_info, sim_folder
from drivers.printer_decode import text_lines
from kit.db import Database
from kit.testing import wait_for
from pos import printqueue


def _days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")


def _backdate_printed(db, days: float) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE pos_print_jobs SET status='done', printed_at=?, document='[]' WHERE status='queued'",
                     (_days_ago(days),))


def test_the_service_prunes_printed_jobs_and_a_pruned_receipt_still_reprints(ctx, pos_kit, monkeypatch):
    import pos.service
    from pos.checkout import sale_view
    from pos.receipts import reprint

    monkeypatch.setattr(pos.service, "PRUNE_EVERY", 0.3)
    ctx.config = pos_kit.config.with_values(pos__print_retention_hours=24)
    sim = SimulatedReceiptPrinter(sim_folder(ctx.config))
    sim.set_state(online=False)  # yesterday's receipts are on paper already; only the copy should print
    old = [pos_kit.sell("TS-L", "STICKER:2").sale for _ in range(3)]
    _backdate_printed(pos_kit.db, 2)
    fresh = pos_kit.sell("HOODIE-M").sale  # waits for the printer: never pruned
    thread = threading.Thread(target=pos.service.run, args=(ctx,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status='done'") == 0, 10,
                 what="yesterday's printed jobs pruned")
        assert pos_kit.db.scalar("SELECT receipt FROM pos_print_jobs") == fresh["receipt"]
        # the sale itself is untouched, and its screen says it printed
        view = sale_view(pos_kit.db, pos_kit.config, old[0]["receipt"])
        assert view["sale"]["total_cents"] == old[0]["total_cents"] and view["print"]["status"] == "done"
        # two copies of one pruned receipt: both queue (no key left over from a pruned job blocks them)
        assert reprint(pos_kit.db, pos_kit.config, old[0]["receipt"]) is not None
        assert reprint(pos_kit.db, pos_kit.config, old[0]["receipt"]) is not None
        sim.set_state(online=True)
        wait_for(lambda: len(sim.outputs()) == 3, 10, what="the fresh receipt and both copies printed")
        copies = [text_lines(p.read_bytes(), profile_info("TM-T20II")["code_pages"]) for p in sim.outputs()]
        marked = [c for c in copies if "*** COPY ***" in c]
        assert len(marked) == 2 and all(f"Receipt {old[0]['receipt']}" in c and f"[QR {old[0]['id']}]" in c for c in marked)
        assert any(line.startswith("TOTAL") and line.endswith("29.00") for line in marked[0])
    finally:
        ctx.stopping.set()
        thread.join(5)



def test_pruning_waits_while_the_table_sells_and_runs_once_it_is_quiet(ctx, pos_kit, monkeypatch):
    """Deleting yesterday's jobs and giving their pages back takes the write lock and an fsync: while
    receipts keep coming it waits, so no sale meets it; a pause of PRUNE_QUIET seconds lets it run."""
    import time

    import pos.service

    monkeypatch.setattr(pos.service, "PRUNE_EVERY", 0.2)
    monkeypatch.setattr(pos.service, "PRUNE_QUIET", 1.0)
    ctx.config = pos_kit.config.with_values(pos__print_retention_hours=24)
    for _ in range(5):
        pos_kit.sell("STICKER")
    _backdate_printed(pos_kit.db, 2)

    def old_jobs():
        return pos_kit.db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status='done' AND printed_at < ?",
                                 (_days_ago(1),))

    thread = threading.Thread(target=pos.service.run, args=(ctx,), daemon=True)
    thread.start()
    try:
        rush_ends = time.monotonic() + 3.0
        while time.monotonic() < rush_ends:  # a sale every 0.3 s: never a second's pause
            pos_kit.sell("TS-L")
            time.sleep(0.3)
            assert old_jobs() == 5, "pruned during the rush"
        wait_for(lambda: old_jobs() == 0, 10, what="yesterday's jobs pruned once the table went quiet")
    finally:
        ctx.stopping.set()
        thread.join(5)

def test_pruning_goes_in_small_batches_and_keeps_what_waits_failed_or_is_recent(pos_kit):
    with pos_kit.db.transaction() as conn:
        for i in range(450):
            printqueue.enqueue(conn, f"old:{i}", "test", "old", [{"text": "x"}])
        conn.execute("UPDATE pos_print_jobs SET status='done', printed_at=?", (_days_ago(3),))
        printqueue.enqueue(conn, "recent", "test", "recent", [{"text": "x"}])
        conn.execute("UPDATE pos_print_jobs SET status='done', printed_at=? WHERE job_key='recent'", (_days_ago(0.5),))
        printqueue.enqueue(conn, "waiting", "test", "waiting", [{"text": "x"}])
        printqueue.enqueue(conn, "broken", "test", "broken", [{"text": "x"}])
        conn.execute("UPDATE pos_print_jobs SET status='failed', printed_at=? WHERE job_key='broken'", (_days_ago(3),))
    batches = [printqueue.prune_printed(pos_kit.db, 24, batch=200) for _ in range(4)]
    assert batches == [200, 200, 50, 0]
    left = {r[0] for r in pos_kit.db.query("SELECT job_key FROM pos_print_jobs")}
    assert left == {"recent", "waiting", "broken"}
    assert printqueue.depth(pos_kit.db) == 1
    assert printqueue.prune_printed(pos_kit.db, 0, batch=200) == 1  # retention 0: printed jobs go at once
    plan = " ".join(str(tuple(r)) for r in pos_kit.db.query(
        "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM pos_print_jobs WHERE status = 'queued'"))
    assert "pos_print_jobs_waiting" in plan  # the depth on every sale counts only what waits


def test_a_new_kit_gives_pruned_pages_back_and_an_old_one_reuses_them(pos_kit, tmp_path):
    db = pos_kit.db
    assert db.scalar("PRAGMA auto_vacuum") == 2  # INCREMENTAL, set when the kit's database file was made
    lines = [{"text": "y" * 200}] * 20
    with db.transaction() as conn:
        for i in range(400):
            printqueue.enqueue(conn, f"big:{i}", "test", "big", lines)
        conn.execute("UPDATE pos_print_jobs SET status='done', printed_at=?", (_days_ago(2),))
    db.checkpoint()
    pages = db.scalar("PRAGMA page_count")
    while printqueue.prune_printed(db, 24, batch=200):
        printqueue.give_back_pages(db, pages=10_000)
    db.checkpoint()
    assert db.scalar("PRAGMA page_count") < pages - 400  # ~1.7 MB of jobs back to the SD card

    # A database made before this version (auto_vacuum NONE) is left as it is: nothing fails, and the
    # freed pages are reused by new rows, so the file stops growing instead of shrinking.
    path = tmp_path / "old.db"
    plain = sqlite3.connect(path)
    plain.executescript("CREATE TABLE pos_print_jobs (id INTEGER PRIMARY KEY, document TEXT);")
    plain.close()
    old = Database(path)
    assert old.scalar("PRAGMA auto_vacuum") == 0
    with old.transaction() as conn:
        conn.executemany("INSERT INTO pos_print_jobs (document) VALUES (?)", [("z" * 4000,)] * 200)
    with old.transaction() as conn:
        conn.execute("DELETE FROM pos_print_jobs")
    grown = old.scalar("PRAGMA page_count")
    assert printqueue.give_back_pages(old) == 0
    with old.transaction() as conn:
        conn.executemany("INSERT INTO pos_print_jobs (document) VALUES (?)", [("z" * 4000,)] * 200)
    assert old.scalar("PRAGMA page_count") <= grown + 5
    old.close()


def _svg_to_image(svg: str, px: int = 6):
    from PIL import Image, ImageDraw

    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    img = Image.new("L", (size * px, size * px), 255)
    draw = ImageDraw.Draw(img)
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)", svg):
        x, y, w = int(x), int(y), int(w)
        draw.rectangle([x * px, y * px, (x + w) * px - 1, (y + 1) * px - 1], fill=0)
    return img


@pytest.mark.parametrize("content", ["0f1c2b3a-1111-4222-8333-444455556666", "test1-12345"])
def test_the_receipt_qr_on_screen_scans_to_what_the_paper_says(content):
    import zxingcpp

    from pos.receipts import _qr_svg, lines_to_html

    html = lines_to_html([{"qr": content}])
    svg = re.search(r"<svg.*?</svg>", html).group(0)
    assert svg == _qr_svg(content)  # made once, then the same drawing for this sale
    found = zxingcpp.read_barcodes(_svg_to_image(svg))
    assert [b.text for b in found] == [content]


def test_compact_switches_an_old_kit_to_incremental_vacuum_and_refuses_while_services_run(pos_kit):
    from click.testing import CliRunner

    from kit.cli import cli
    from kit.db import DatabaseLock

    db = pos_kit.db
    db.conn.execute("PRAGMA auto_vacuum=NONE")
    db.conn.execute("VACUUM")  # now like a kit made before this version
    assert db.scalar("PRAGMA auto_vacuum") == 0
    with db.transaction() as conn:
        for i in range(300):
            printqueue.enqueue(conn, f"old:{i}", "test", "old", [{"text": "q" * 200}] * 20)
    _backdate_printed(db, 2)
    db.checkpoint()
    service = DatabaseLock(pos_kit.config.db_path)
    service.shared()
    try:
        busy = CliRunner().invoke(cli, ["pos", "compact"], catch_exceptions=False)
    finally:
        service.release()
    assert busy.exit_code == 1 and "services are running" in busy.output
    assert db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == 300
    before = pos_kit.config.db_path.stat().st_size
    done = CliRunner().invoke(cli, ["pos", "compact"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "300 printed job(s) deleted" in done.output and "incremental vacuum on" in done.output
    fresh = sqlite3.connect(pos_kit.config.db_path)  # (an open connection keeps its cached header value)
    assert fresh.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    fresh.close()
    assert db.scalar("SELECT COUNT(*) FROM pos_print_jobs") == 0
    assert pos_kit.config.db_path.stat().st_size < before - 1_000_000
