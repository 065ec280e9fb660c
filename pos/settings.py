"""Settings of the pos feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("pos.receipt_prefix", "", "Prefix of receipt numbers (<prefix>-<n>); the kit id when empty."),
    Setting("pos.prices_include_tax", True, "Catalogue prices include tax (true) or tax is added on top (false)."),
    Setting("pos.default_tax_rate", "0", "Tax rate in percent for catalogue rows that name none, e.g. 19 or 7.7."),
    Setting("pos.receipt_header", "", "Extra header lines on receipts (company, address, tax number); '|' splits lines."),
    Setting("pos.receipt_footer", "Thank you!", "Footer line printed at the end of every receipt."),
    Setting("pos.denominations", [50000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1],
            "Cash denominations in cents offered when counting the drawer at shift close."),
    Setting("pos.printer.backend", "auto", "Receipt printer: usb, serial, network, file, sim, none or auto.",
            choices=("auto", "usb", "serial", "network", "file", "sim", "none")),
    Setting("pos.printer.profile", "TM-T20II",
            "python-escpos printer profile (paper width, code pages, QR support), e.g. TM-T20II or NT-5890K."),
    Setting("pos.printer.usb_vendor", "0x04b8", "USB vendor id of the receipt printer (hex)."),
    Setting("pos.printer.usb_product", "0x0e15", "USB product id of the receipt printer (hex)."),
    Setting("pos.printer.serial_device", "/dev/ttyUSB0", "Serial device of a serial receipt printer."),
    Setting("pos.printer.serial_baudrate", 19200, "Baud rate of a serial receipt printer."),
    Setting("pos.printer.host", "", "Address of a network receipt printer (raw port 9100)."),
    Setting("pos.printer.port", 9100, "TCP port of a network receipt printer."),
    Setting("pos.printer.file", "/dev/usb/lp0", "Device file of a printer driven through the kernel's usblp driver."),
    Setting("pos.print_retention_hours", 24.0,
            "Hours a printed job stays in the print queue before the pos service deletes it (a reprint rebuilds"
            " the receipt from the sale); 0 deletes printed jobs at once."),
    Setting("pos.printer.retry_seconds", 3.0, "Seconds between attempts while the printer is offline or out of paper."),
]
