"""The join form in a real browser (Chromium), on a 360 px wide phone screen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import UNNAMED_CONTROLS, assert_fits_a_phone, press_and_wait

pytestmark = pytest.mark.browser

APPLICANT = "amara@riverbank.example"
EMAIL_ERROR = "Enter an email address such as name@example.org."


def _is_join_post(response) -> bool:  # type: ignore[no-untyped-def]
    return response.request.method == "POST" and response.url.split("?")[0].endswith("/join")


def _fill_join_form(page: Page, email: str) -> None:
    """Fill every field through its visible label, as a person reading the form would."""
    page.get_by_label("Name of the organisation").fill("Riverbank Survivors Network")
    page.get_by_label("A civil-society organisation").check()
    page.get_by_label("Website (optional)").fill("https://riverbank.example")
    page.get_by_label("Yes", exact=True).check()
    page.get_by_label("Where in Cambodia?").fill("Battambang")
    page.get_by_label("Your work with victim-survivors").fill(
        "Psychosocial support groups for elderly survivors in three provinces."
    )
    page.get_by_label("Your name").fill("Amara Sok")
    page.get_by_label("Your role in the organisation").fill("Programme officer")
    page.get_by_label("Your email address").fill(email)
    page.get_by_label("Phone (optional)").fill("+855 12 345 678")
    page.get_by_label("English", exact=True).check()
    first = page.get_by_role("group", name="Further representative 1")
    first.get_by_label("Name", exact=True).fill("Dara Chan")
    first.get_by_label("Email", exact=True).fill("dara@riverbank.example")
    page.get_by_label("I agree that the working group may contact me by email").check()


def _send(page: Page, expected_status: int) -> None:
    press_and_wait(page, "Send my request", posts_to="/join", status=expected_status)


def test_applicant_corrects_a_validation_error_and_the_request_is_sent(
    page: Page, live_server: str, deliver, smtp_server
):
    page.goto(f"{live_server}/join")
    _fill_join_form(page, email="amara@")
    _send(page, 400)

    summary = page.get_by_role("alert")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text(f"Your email address: {EMAIL_ERROR}")
    summary.get_by_role("link", name=re.compile("Your email address")).click()
    email = page.get_by_label("Your email address")
    expect(email).to_be_focused()  # the summary's link leads to the field
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(re.compile(re.escape(EMAIL_ERROR)))
    described_by = (email.get_attribute("aria-describedby") or "").split()
    messages = [page.locator(f"[id='{ident}']") for ident in described_by]
    assert any(m.count() == 1 and EMAIL_ERROR in m.inner_text() for m in messages), described_by
    # ... and the message is shown with the field it is about, not elsewhere on the page.
    email_field = page.locator(".field", has=email)
    expect(email_field.locator(".field-error")).to_have_text(re.compile(re.escape(EMAIL_ERROR)))
    expect(page.locator(".field-error")).to_have_count(1)

    # Nothing the applicant typed or chose is lost.
    expect(email).to_have_value("amara@")
    expect(page.get_by_label("Name of the organisation")).to_have_value(
        "Riverbank Survivors Network"
    )
    expect(page.get_by_label("A civil-society organisation")).to_be_checked()
    expect(page.get_by_label("Yes", exact=True)).to_be_checked()
    expect(page.get_by_label("Where in Cambodia?")).to_have_value("Battambang")
    expect(page.get_by_label("Your work with victim-survivors")).to_have_value(
        "Psychosocial support groups for elderly survivors in three provinces."
    )
    expect(page.get_by_label("Your name")).to_have_value("Amara Sok")
    expect(page.get_by_label("Your role in the organisation")).to_have_value("Programme officer")
    expect(page.get_by_label("Phone (optional)")).to_have_value("+855 12 345 678")
    expect(page.get_by_label("English", exact=True)).to_be_checked()
    first = page.get_by_role("group", name="Further representative 1")
    expect(first.get_by_label("Email", exact=True)).to_have_value("dara@riverbank.example")
    expect(page.get_by_label("I agree that the working group may contact me")).to_be_checked()
    assert smtp_server.messages == []

    email.fill(APPLICANT)
    _send(page, 302)
    expect(page).to_have_url(f"{live_server}/join/sent")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

    deliver()
    confirmation = smtp_server.single_message_to(APPLICANT)
    page.goto(live_server + confirmation.link("/confirm/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email address")
    expect(page.get_by_text("Riverbank Survivors Network")).to_be_visible()
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page).to_have_url(f"{live_server}/confirmed")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Thank you, your address is confirmed"
    )


@pytest.mark.parametrize(
    ("path", "screenshot"),
    [("/join", "/tmp/wg-join-360.png"), ("/join?lang=km", "/tmp/wg-join-360-km.png")],
    ids=["en", "km"],
)
def test_join_form_fits_a_phone_screen(page: Page, live_server: str, path: str, screenshot: str):
    page.goto(live_server + path)
    expect(page.get_by_role("button")).to_be_visible()
    page.screenshot(path=screenshot, full_page=True)  # for people to look at; not asserted

    assert_fits_a_phone(page)


FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), type: el.type || '', name: el.name || '',
          id: el.id || '', cls: el.className || '', text: (el.innerText || '').trim(),
          outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
}"""


def test_join_form_can_be_completed_with_the_keyboard_alone(page: Page, live_server: str):
    page.goto(f"{live_server}/join")

    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert "skip-link" in focused["cls"], f"the first Tab should reach the skip link: {focused}"
    expect(page.get_by_role("link", name="Skip to the content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate(FOCUSED)
    assert focused["id"] == "organisation_name", f"skip link should lead to the form: {focused}"

    radio_groups_reached: set[str] = set()
    visited = []
    for _ in range(80):
        focused = page.evaluate(FOCUSED)
        visited.append(focused["name"] or focused["id"] or focused["tag"])
        assert focused["name"] != "homepage", "the hidden honeypot field took the focus"
        assert focused["outline"], f"no visible focus indicator on {focused}"
        if focused["type"] == "radio":
            radio_groups_reached.add(focused["name"])
            if focused["name"] == "kind":
                page.keyboard.press("Space")  # choose an option with the keyboard
                expect(page.locator("input[name=kind]:focus")).to_be_checked()
        if focused["tag"] == "button" and focused["type"] == "submit":
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail(f"80 presses of Tab did not reach the submit button; visited {visited}")

    assert focused["text"] == "Send my request"
    assert radio_groups_reached == {"kind", "represented_in_cambodia", "language"}, visited
    assert "consent" in visited and "email" in visited
    with page.expect_response(_is_join_post) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 400
    expect(page.get_by_role("alert")).to_contain_text("Please correct the following:")
    expect(page.get_by_label("A civil-society organisation")).to_be_checked()  # kept


def test_page_language_and_switch(page: Page, live_server: str):
    page.goto(f"{live_server}/join")
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Join the working group")

    khmer = page.get_by_role("navigation", name="Language").get_by_role("link", name="ភាសាខ្មែរ")
    expect(khmer).to_be_visible()
    expect(khmer).to_have_attribute("lang", "km")
    khmer.click()
    expect(page).to_have_url(re.compile(r"/join\?lang=km$"))
    expect(html).to_have_attribute("lang", "km")
    expect(page.get_by_role("heading", level=1)).to_have_text("ចូលរួមជាសមាជិកក្រុមការងារ")
    expect(page.get_by_role("button")).to_have_text("ផ្ញើសំណើរបស់ខ្ញុំ")

    page.goto(f"{live_server}/join")  # no ?lang=: the cookie remembers the choice
    expect(html).to_have_attribute("lang", "km")
    expect(page.get_by_role("heading", level=1)).to_have_text("ចូលរួមជាសមាជិកក្រុមការងារ")
    expect(page.get_by_role("link", name="ភាសាខ្មែរ")).to_have_attribute("aria-current", "page")

    page.get_by_role("link", name="English", exact=True).click()
    expect(html).to_have_attribute("lang", "en")
    page.goto(f"{live_server}/join/sent")
    expect(html).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")


CONTRAST = """(selector) => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour && colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    let result = {r: 255, g: 255, b: 255, a: 1};
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const luminance = (c) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  };
  return [...document.querySelectorAll(selector)]
    .filter(el => !el.closest('.trap') && (el.innerText || '').trim())
    .map(el => {
      const bg = background(el);
      const fg = over(parse(getComputedStyle(el).color), bg);
      const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      return {element: el.outerHTML.slice(0, 80), ratio: (l1 + 0.05) / (l2 + 0.05),
              colour: getComputedStyle(el).color, background: `rgb(${bg.r}, ${bg.g}, ${bg.b})`};
    });
}"""

TEXT_KINDS = {
    "body text": "main > p, .site-header .group-name",
    "labels and legends": "label, legend, .required",
    "hints": ".hint",
    "error messages": ".field-error, .error-summary h2",
    "links": "a",
    "submit button": "button[type=submit]",
}


def test_text_has_enough_contrast(page: Page, live_server: str):
    page.goto(f"{live_server}/join")
    _send(page, 400)  # an empty form: every error message is on the page
    expect(page.get_by_role("alert")).to_be_visible()

    too_faint = []
    for kind, selector in TEXT_KINDS.items():
        measured = page.evaluate(CONTRAST, selector)
        assert measured, f"found no {kind} ({selector}) to measure"
        too_faint += [{"kind": kind, **m} for m in measured if m["ratio"] < 4.5]
    assert too_faint == [], f"text below the WCAG AA contrast ratio of 4.5:1: {too_faint}"


def test_every_form_control_has_an_accessible_name(page: Page, live_server: str):
    page.goto(f"{live_server}/join")
    found = page.evaluate(UNNAMED_CONTROLS)
    assert found["problems"] == []
    assert found["groups"] == ["kind", "represented_in_cambodia", "language"]
    # 7 text inputs, a text area, 7 radios, 6 representative fields, the checkbox, the button
    assert found["count"] == 23

    # The same, as the browser's accessibility tree computes it.
    controls = page.locator(
        "input:not([type=hidden]):not(.trap *), select:not(.trap *), "
        "textarea:not(.trap *), button:not(.trap *)"
    )
    expect(controls).to_have_count(23)
    for index in range(controls.count()):
        expect(controls.nth(index)).to_have_accessible_name(re.compile(r"\S"))
    for group in (
        "The applicant is",
        "Does it have representatives in Cambodia?",
        "Preferred language for emails",
    ):
        expect(page.get_by_role("group", name=group).get_by_role("radio")).not_to_have_count(0)


FOCUS_RING = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  if (style.outlineStyle === 'none' || !(parseFloat(style.outlineWidth) > 0))
    return {element: el.outerHTML.slice(0, 80), ratio: 0, ring: 'none'};
  const parse = (value) => value.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  // What is painted around the ring: the element under the middle of its lower edge.
  const rect = el.getBoundingClientRect();
  const y = rect.bottom + parseFloat(style.outlineOffset) + parseFloat(style.outlineWidth) / 2;
  const behind = document.elementsFromPoint(rect.left + rect.width / 2, y)
    .find(node => node !== el && !el.contains(node)) || document.documentElement;
  let background = [255, 255, 255];
  for (let node = behind; node; node = node.parentElement) {
    const colour = parse(getComputedStyle(node).backgroundColor);
    if (colour.length < 4 || colour[3] > 0) { background = colour.slice(0, 3); break; }
  }
  const [l1, l2] = [luminance(parse(style.outlineColor)), luminance(background)]
    .sort((a, b) => b - a);
  return {element: el.outerHTML.slice(0, 80), ratio: (l1 + 0.05) / (l2 + 0.05),
          ring: style.outlineColor, background: `rgb(${background.join(', ')})`};
}"""


def test_keyboard_focus_is_clearly_visible(page: Page, live_server: str):
    """The focus ring contrasts at least 3:1 with what surrounds it (WCAG 1.4.11)."""
    page.goto(f"{live_server}/join")
    rings = []
    for _ in range(80):
        page.keyboard.press("Tab")
        rings.append(page.evaluate(FOCUS_RING))
        if page.evaluate("document.activeElement.type === 'submit'"):
            break
    else:
        pytest.fail("80 presses of Tab did not reach the submit button")
    assert len(rings) > 20
    faint = [ring for ring in rings if ring["ratio"] < 3]
    assert faint == [], f"{len(faint)} of {len(rings)} focus rings are too faint: {faint[:3]}"


ERROR_PLACEMENT = """() => [...document.querySelectorAll('.field-error')].map(message => {
  const owner = document.querySelector(`[aria-describedby~="${message.id}"]`);
  const control = owner && owner.matches('fieldset') ? owner.querySelector('input') : owner;
  const [m, c] = [message.getBoundingClientRect(), control.getBoundingClientRect()];
  return {id: message.id, above: m.bottom <= c.top + 1, messageWidth: m.width,
          fieldWidth: message.parentElement.getBoundingClientRect().width};
})"""


def test_error_messages_sit_above_their_field_on_a_phone(page: Page, live_server: str):
    page.goto(f"{live_server}/join")
    _send(page, 400)  # an empty form: every required field has a message
    placements = page.evaluate(ERROR_PLACEMENT)
    assert {p["id"] for p in placements} >= {"email-error", "kind-error", "consent-error"}
    squeezed = [
        p for p in placements if not p["above"] or p["messageWidth"] < p["fieldWidth"] * 0.9
    ]
    assert squeezed == [], f"error messages beside, not above, their field: {squeezed}"
