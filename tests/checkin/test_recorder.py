"""Group commit: scans arriving together share a commit and are still decided one after another."""

import threading

from checkin.recorder import ScanRecorder
from kit.ledger import verify


def test_simultaneous_scans_of_one_ticket_admit_exactly_once(door):
    recorder = ScanRecorder(door.db, door.ledger, door.rules)
    code = door.ticket(seed="TOGETHER1")
    others = [door.ticket(seed=f"OTHER{i:04d}") for i in range(40)]
    verdicts: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for payload in [code] + others[n * 5:(n + 1) * 5]:
            v = recorder.record(payload, source=f"t{n}")["verdict"]
            with lock:
                verdicts.append(v)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    recorder.close()
    assert sorted(verdicts).count("admit") == 41 and verdicts.count("already_in") == 7
    assert recorder.batches < len(verdicts)  # at least some scans shared a commit
    assert door.db.scalar("SELECT COUNT(*) FROM checkin_scans") == 48
    assert verify(door.db)[1] == []


def test_a_failing_scan_does_not_lose_its_batch_mates(door, monkeypatch):
    import checkin.recorder as mod

    real = mod.record_in

    def flaky(conn, ledger, rules, payload, **kw):
        if payload == "boom":
            raise RuntimeError("simulated bug")
        return real(conn, ledger, rules, payload, **kw)

    monkeypatch.setattr(mod, "record_in", flaky)
    recorder = ScanRecorder(door.db, door.ledger, door.rules)
    results: dict[str, object] = {}

    def scan(p: str) -> None:
        try:
            results[p] = recorder.record(p)["verdict"]
        except RuntimeError as e:
            results[p] = str(e)

    threads = [threading.Thread(target=scan, args=(p,)) for p in ("boom", door.ticket(seed="MATE00001"), "junk")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    recorder.close()
    assert results["boom"] == "simulated bug"
    assert sorted(v for k, v in results.items() if k != "boom") == ["admit", "unknown"]
    assert door.db.scalar("SELECT COUNT(*) FROM checkin_scans") == 2
