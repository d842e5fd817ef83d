"""The coordinators' console in the production topology: the sign-in link goes through the
Postfix relay into the coordinator's Dovecot mailbox, a scanner's visit signs nobody in, the
session holds across both gunicorn workers, and leaving the list ends it."""

from __future__ import annotations

import urllib.request

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.production.conftest import COORDINATOR, Production
from tests.production.test_topology import link

pytestmark = pytest.mark.browser


def test_a_coordinator_signs_in_by_the_relayed_link_until_they_leave_the_list(
    production: Production, browser
):
    mailbox = production.mail[COORDINATOR]
    before = len(mailbox.files())
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="km-KH")
    page = context.new_page()
    try:
        page.goto(production.base_url + "/console")
        page.locator("#email").fill(COORDINATOR)
        with page.expect_navigation():
            page.locator("main form button[type=submit]").click()
        sign_in = link(production, mailbox.wait_for(before + 1)[-1], "/console/sign-in/")
        with urllib.request.urlopen(sign_in, timeout=10) as scanner:  # a mail scanner's GET
            assert scanner.status == 200
        page.goto(production.base_url + "/console")
        assert "/console/sign-in" in page.url  # the scanner signed nobody in

        page.goto(sign_in)
        with page.expect_navigation():
            page.locator("main form button[type=submit]").click()
        expect(page.locator("h1")).to_have_text("Overview")  # the coordinator's language
        page.goto(production.base_url + "/console?lang=km")  # switched, and remembered
        for _ in range(4):  # two workers, one session
            page.goto(production.base_url + "/console")
            expect(page.locator("h1")).to_have_text("ទិដ្ឋភាពទូទៅ")  # Overview
        violations = [
            v["id"]
            for v in Axe().run(page).response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert violations == []

        production.wg("coordinators", "remove", COORDINATOR)
        page.goto(production.base_url + "/console")
        assert "/console/sign-in" in page.url
    finally:
        context.close()
        production.wg("coordinators", "add", COORDINATOR, check=False)  # for later modules
