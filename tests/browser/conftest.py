"""What the screen tests measure on a page, in the page itself: sideways overflow, whether an element is
on screen and not covered, touch targets, and axe-core's verdict (axe.min.js vendored beside this file)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
AXE_JS = HERE / "axe" / "axe.min.js"
SIZES = [(800, 480), (1024, 600), (390, 844), (360, 740)]  # the Pi's 7-inch display, a 7" tablet, two phones
MIN_TARGET_PX = 44
SCREENSHOTS = "build/screenshots"  # relative to the checkout; tests/conftest.py names it at the end of a run


def screenshot_dir() -> Path:
    """build/screenshots in the checkout (FIELDKIT_SCREENSHOTS overrides): kept after the run, for a person."""
    d = Path(os.environ.get("FIELDKIT_SCREENSHOTS") or HERE.parents[1] / SCREENSHOTS)
    d.mkdir(parents=True, exist_ok=True)
    return d


def overflow(page) -> dict:
    """How far the page scrolls sideways (0 when it does not), and the widest offenders if it does."""
    return page.evaluate("""() => {
      const w = window.innerWidth, sw = document.documentElement.scrollWidth;
      const wide = [];
      if (sw > w) for (const el of document.querySelectorAll('body *')) {
        const r = el.getBoundingClientRect();
        if (r.right > w + 1 && r.width > 0 && getComputedStyle(el).position !== 'fixed')
          wide.push((el.id ? '#' + el.id : el.tagName.toLowerCase() + '.' + el.className) + ' right=' + Math.round(r.right));
      }
      return { excess: Math.max(0, sw - w), offenders: wide.slice(0, 8) };
    }""")


def on_screen(page, selector: str) -> str:
    """'' when the element is inside the viewport without scrolling and not covered; else why not."""
    return page.evaluate("""(sel) => {
      const el = document.querySelector(sel);
      if (!el) return 'missing';
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) return 'not shown';
      if (r.left < -1 || r.top < -1 || r.right > window.innerWidth + 1 || r.bottom > window.innerHeight + 1)
        return 'outside the viewport: ' + JSON.stringify([Math.round(r.left), Math.round(r.top), Math.round(r.right),
               Math.round(r.bottom)]) + ' in ' + window.innerWidth + 'x' + window.innerHeight;
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      if (hit && hit !== el && !el.contains(hit) && !hit.contains(el)) return 'covered by ' + (hit.id || hit.tagName);
      return '';
    }""", selector)


def clipped(page, selector: str) -> str:
    """'' when the element's content fits its width (no hidden sideways part); else by how much."""
    return page.evaluate("""(sel) => {
      const el = document.querySelector(sel);
      if (!el) return 'missing';
      const over = [el, ...el.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1
        && e.clientWidth > 0 && ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX));
      return over.length ? over.map(e => (e.id || e.className) + ' ' + e.scrollWidth + '>' + e.clientWidth).join(', ') : '';
    }""", selector)


def small_targets(page) -> list[str]:
    """Visible buttons, inputs, selects and button-like links smaller than 44 px either way."""
    return page.evaluate("""(min) => {
      const out = [];
      for (const el of document.querySelectorAll('button, a.btn, header a, input:not([type=hidden]), select, summary')) {
        const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
        if (!r.width || !r.height || cs.visibility === 'hidden') continue;
        if (el.closest('[hidden]')) continue;
        if ((el.type === 'checkbox' || el.type === 'radio') && el.closest('label')) {
          const l = el.closest('label').getBoundingClientRect();
          if (l.width >= min && l.height >= min) continue;
        }
        if (r.width < min - 0.5 || r.height < min - 0.5)
          out.push((el.id ? '#' + el.id : el.tagName.toLowerCase()) + ' "' + (el.textContent || el.value || '').trim().slice(0, 20)
                   + '" ' + Math.round(r.width) + 'x' + Math.round(r.height));
      }
      return out;
    }""", MIN_TARGET_PX)


def hidden_but_taking_space(page) -> list[str]:
    """Elements marked hidden that still take room (an empty alert strip 30 px tall, say)."""
    return page.evaluate("""() => [...document.querySelectorAll('[hidden]')]
      .filter(e => e.getBoundingClientRect().height > 0).map(e => '#' + e.id + ' ' + e.className)""")


_AXE_SOURCE: list[str] = []


def axe(page) -> list[dict]:
    """axe-core's violations on the page as shown now: [{id, impact, nodes, help}]."""
    if not page.evaluate("() => !!window.axe"):
        if not _AXE_SOURCE:
            _AXE_SOURCE.append(AXE_JS.read_text())
        page.add_script_tag(content=_AXE_SOURCE[0])
    result = page.evaluate("""async () => {
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n').slice(1, 2).join('')) }));
    }""")
    return result


def serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def record(name: str, size: tuple[int, int], violations: list[dict]) -> None:
    """Append one page's axe counts to axe-counts.jsonl in the screenshot folder (read back for the report)."""
    counts = {i: sum(1 for v in violations if v["impact"] == i) for i in ("minor", "moderate", "serious", "critical")}
    line = {"page": name, "size": f"{size[0]}x{size[1]}", **counts, "ids": sorted({v["id"] for v in violations})}
    with (screenshot_dir() / "axe-counts.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


# --- fixtures: one kit and one browser for a whole module, signed-in states per role ----------------

@pytest.fixture(scope="module")
def screens():
    """These helpers (overflow, on_screen, clipped, small_targets, axe, record, SIZES...)."""
    return sys.modules[__name__]


@pytest.fixture(scope="module")
def shots():
    """The screenshot folder (tests/conftest.py prints its path at the end of the run, for a person to look)."""
    d = screenshot_dir()
    (d / "axe-counts.jsonl").unlink(missing_ok=True)
    return d


def signed_in_states(browser, kit, roles=("door", "merch", "lead")) -> dict:
    """Each role's signed-in cookies, once, so every page-and-size context starts signed in."""
    states = {}
    for role in roles:
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(kit.url + "login")
        pg.fill("#pin", kit.pins[role])
        pg.click("button[type=submit]")
        pg.wait_for_load_state()
        assert "/login" not in pg.url, f"{role} could not sign in"
        states[role] = context.storage_state()
        context.close()
    return states
