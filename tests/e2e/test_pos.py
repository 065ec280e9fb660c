"""Merch staff sell two items for cash in a real browser: change due in huge type, receipt preview, paper printed."""

import re

import pytest

from drivers.printer import profile_info
from drivers.printer_decode import text_lines

pytestmark = pytest.mark.browser


def test_merch_sells_two_items_with_cash_and_sees_change_and_receipt(kit_factory, page, sign_in):
    kit = kit_factory(["web", "pos"])
    sign_in(page, kit, "merch", "/merch")
    page.wait_for_selector("#products .product")
    page.click("#products .product[data-product='T-shirt']")
    page.click("#variants button[data-sku='TS-L']")
    page.click("#products .product[data-product='Sticker']")
    assert page.locator("#cart li").count() == 2
    assert page.locator("#cart-total").inner_text() == "27.00"
    page.click("#pay")
    page.click("#keypad button:text-is('5')")
    page.click("#keypad button:text-is('0')")
    assert page.locator("#change-due").inner_text() == "23.00"
    page.click("#confirm-pay")
    page.wait_for_selector("#done-dialog:not([hidden])")
    change = page.locator("#done-change")
    assert change.inner_text() == "23.00"
    assert float(change.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 64  # huge type
    receipt = page.locator("#done-receipt").inner_text()
    assert re.fullmatch(r"e2e\d+-1", receipt)
    preview = page.locator("#receipt-preview")
    assert f"Receipt {receipt}" in preview.inner_text() and "T-shirt L" in preview.inner_text()
    page.wait_for_function("() => { const i = document.querySelector('#receipt-preview .r-qr img');"
                           " return i && i.complete && i.naturalWidth > 0; }")  # the receipt's QR, from the kit itself
    page.locator("#print-status", has_text="Receipt printed").wait_for(timeout=15_000)
    # the simulated printer kept the bytes: they say what the preview said
    out = sorted((kit.home / "var" / "printer-sim" / "out").glob("*.bin"))
    lines = text_lines(out[0].read_bytes(), profile_info("TM-T20II")["code_pages"])
    assert f"Receipt {receipt}" in lines
    assert any(line.startswith("CHANGE") and line.endswith("23.00") for line in lines)
    page.click("#new-sale")
    assert page.locator("#cart li").count() == 0
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'scan'")  # ready to scan

    # a pre-order pickup scanned by a keyboard-wedge scanner into the focused input
    page.keyboard.type("PU-DEMO1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pickup-dialog:not([hidden])")
    assert page.locator("#pickup-items").inner_text() == "1× Hoodie M — hand over"
    page.click("#pickup-done")
    page.locator("#message", has_text="PU-DEMO1 handed over").wait_for()
    page.keyboard.type("PU-DEMO1")
    page.keyboard.press("Enter")
    page.locator("#pickup-note", has_text="Already collected").wait_for()

    # the customer brings the sticker back: a lead approves with the lead PIN on the same screen
    page.click("#pickup-cancel")
    page.click("#refund-open")
    page.fill("#refund-receipt", receipt)
    page.press("#refund-receipt", "Enter")
    page.locator("#refund-lines input[data-line='2']").fill("1")
    page.fill("#refund-reason", "changed mind")
    page.fill("#refund-pin", kit.pins["merch"])
    page.click("#refund-go")
    page.locator("#refund-msg", has_text="needs a lead").wait_for()
    page.fill("#refund-pin", kit.pins["lead"])
    page.click("#refund-go")
    page.locator("#refund-msg", has_text="give back 2.00 by cash").wait_for()

    # a scanner that sends no Enter: the barcode of a T-shirt L lands in the cart by itself
    page.click("#refund-close")
    # keys arrive in one burst, as from a USB scanner (the browser's own key timing is not ours to trust here)
    page.evaluate("""code => { const el = document.getElementById('scan'); el.focus();
        for (const ch of code) { el.value += ch; el.dispatchEvent(new Event('input', {bubbles: true})); } }""",
                  "4006381333924")
    page.locator("#cart li[data-sku='TS-L']").wait_for()
