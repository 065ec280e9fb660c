"""``fieldkit doctor`` checks of the pos feature: the printer and its profile, the catalogue, the queue."""

from __future__ import annotations

from drivers.base import DeviceUnavailable
from kit.config import Config
from kit.doctor import Check, fail, ok, python_module_check, warn


def check_printer(config: Config) -> list[Check]:
    from drivers.printer import open_printer, profile_info

    checks: list[Check] = []
    try:
        info = profile_info(config["pos.printer.profile"])
        checks.append(ok("printer profile", f"{info['name']}: {info['columns']} columns, "
                                            f"{'native' if info['qr'] else 'image'} QR codes"))
    except DeviceUnavailable as e:
        checks.append(fail("printer profile", str(e), "set pos.printer.profile to a python-escpos profile, e.g. TM-T20II"))
    backend = config.backend("pos.printer.backend")
    if backend in ("usb", "auto"):
        checks.append(python_module_check("printer usb", "usb", "the USB receipt printer",
                                          "apt-get install python3-usb (or pip install pyusb)"))
    try:
        printer = open_printer(config)
        st = printer.status()
    except DeviceUnavailable as e:
        return checks + [warn("printer", str(e), "check pos.printer.* with `fieldkit config show`; receipts will queue")]
    if st.ready:
        paper = "" if st.paper in ("ok", "unknown") else f" (paper {st.paper})"
        checks.append(ok("printer", f"{printer.description} ready{paper}"))
    elif printer.name == "usb" and "pyusb" in (st.reason or ""):
        checks.append(warn("printer", st.reason, "apt-get install python3-usb (the kit's venv sees system packages), "
                                                 "or set pos.printer.backend = \"file\" for /dev/usb/lp0; receipts queue meanwhile"))
    elif printer.name == "usb":
        checks.append(warn("printer", st.reason or "Printer not found on USB",
                           "plug in the printer and switch it on; check the udev rule for its USB id "
                           f"{config['pos.printer.usb_vendor']}:{config['pos.printer.usb_product']}; receipts queue meanwhile"))
    else:
        checks.append(warn("printer", st.reason or f"{printer.description} is not ready",
                           "check cable, power and paper; receipts queue and print when it is back"))
    return checks


def check_catalogue(config: Config) -> list[Check]:
    from kit.service import open_database

    if not config.db_path.exists():
        return []
    db = open_database(config)
    try:
        n = db.scalar("SELECT COUNT(*) FROM pos_products WHERE active = 1")
        waiting = db.scalar("SELECT COUNT(*) FROM pos_print_jobs WHERE status = 'queued'")
    except Exception:  # tables missing: the database check already says migrations are pending
        return []
    finally:
        db.close()
    checks = [ok("catalogue", f"{n} products on sale") if n else
              warn("catalogue", "no products on sale", "import one: `fieldkit pos catalogue import catalogue.csv`")]
    if waiting:
        checks.append(warn("print queue", f"{waiting} receipt(s) waiting for the printer",
                           "fix the printer; the pos service prints them when it is back"))
    return checks
