"""Every page the console links to, crawled after a tenant, a key, jobs and a batch exist:
none shows a secret the stack knows, none carries inline code, each is usable by keyboard and
screen reader, its text meets WCAG AA contrast, and it fits a phone's width; a screenshot of
each is saved (docs/console.md)."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.console.conftest import ENCRYPTION_KEY, PROVIDER_KEY
from tests.support.admin import ADMIN_KEY, CHAT
from tests.support.console import ConsoleBrowser, ConsoleHttp, assert_no_inline_code
from tests.support.stack import Stack

MAX_PAGES = 150
LINK = re.compile(r'href="(/ui/[^"#]*)"')
SKIP = re.compile(r"^/ui/(static/|logout|login)")
DOWNLOAD = re.compile(r"/(output|error)$")


@dataclass(frozen=True)
class Populated:
    tenant: str
    tenant_key: str
    job_id: str


@pytest.fixture(scope="module")
def populated(console_stack: Stack) -> Populated:
    """What gives the pages something to show: a tenant with a key, a finished job, and an
    operator key besides the config's."""
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=console_stack.url, headers=headers, timeout=30) as admin:
        tenant = f"crawl-{int(time.time() * 1000) % 10**8}"
        assert admin.post("/admin/tenants", json={"id": tenant}).status_code == 201
        key = admin.post("/admin/keys", json={"tenant": tenant, "name": "crawler"}).json()["key"]
        admin.post("/admin/keys", json={"name": "second operator"}).raise_for_status()
    tenant_headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=console_stack.url, headers=tenant_headers, timeout=30) as client:
        job = client.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": CHAT})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        done = client.get(f"/v1/jobs/{job_id}", params={"wait": 20}).json()
        assert done["status"] == "succeeded", done
    return Populated(tenant, key, job_id)


def crawl(ui: ConsoleHttp, start: list[str]) -> dict[str, httpx.Response]:
    """Breadth first over the console's own links (GET only: nothing is changed)."""
    seen: dict[str, httpx.Response] = {}
    queue = list(start)
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen or SKIP.match(path):
            continue
        answer = ui.page(path)
        seen[path] = answer
        if "text/html" in answer.headers.get("content-type", ""):
            for found in LINK.findall(answer.text):
                link = html.unescape(found)
                if link not in seen and not SKIP.match(link):
                    queue.append(link)
    return seen


def test_no_page_shows_a_secret(console_stack: Stack, populated: Populated) -> None:
    secrets = {
        "the admin key": ADMIN_KEY,
        "a tenant's key": populated.tenant_key,
        "the provider key": PROVIDER_KEY,
        "the encryption key": ENCRYPTION_KEY,
    }
    with ConsoleHttp(console_stack.url) as ui:
        assert ui.login().status_code == 303
        start = [
            "/ui/",
            "/ui/tenants",
            f"/ui/tenants/{populated.tenant}",
            "/ui/jobs",
            f"/ui/jobs/{populated.job_id}",
            f"/ui/jobs?tenant={populated.tenant}",
            "/ui/batches",
            "/ui/dead-letters",
            "/ui/config",
        ]
        pages = crawl(ui, start)
    assert len(pages) >= len(start)
    for path, answer in pages.items():
        assert answer.status_code == 200, (path, answer.status_code)
        body = answer.text
        for name, secret in secrets.items():
            assert secret not in body, f"{path} shows {name}"
            assert secret[4:24] not in body, f"{path} shows part of {name}"
        if "text/html" in answer.headers["content-type"] and not DOWNLOAD.search(path):
            assert_no_inline_code(body)


A11Y_CHECK = r"""() => {
  const problems = [];
  const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
  if (document.documentElement.lang !== "en") problems.push("no lang");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not one h1");
  if (!document.querySelector("main")) problems.push("no main landmark");
  for (const field of document.querySelectorAll("input, select, textarea")) {
    if (field.type === "hidden" || !visible(field)) continue;
    const named = field.labels?.length || field.getAttribute("aria-label")
      || field.getAttribute("aria-labelledby");
    if (!named) problems.push("unlabelled field " + (field.name || field.id || field.type));
  }
  for (const table of document.querySelectorAll("table")) {
    if (!table.querySelector("caption") && !table.getAttribute("aria-label")
        && !table.getAttribute("aria-labelledby")) problems.push("table without caption");
    if (!table.querySelector("th")) problems.push("table without header cells");
  }
  for (const image of document.querySelectorAll("img")) {
    if (!image.hasAttribute("alt")) problems.push("img without alt");
  }
  for (const button of document.querySelectorAll("button, a[href]")) {
    if (visible(button) && !(button.innerText || "").trim() && !button.getAttribute("aria-label"))
      problems.push("control without a name");
  }
  // WCAG AA contrast of every visible text: 4.5:1, or 3:1 for large text
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (let a = e; a; a = a.parentElement) {
      const c = rgb(getComputedStyle(a).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const e of document.querySelectorAll("body *")) {
    const text = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || !visible(e) || e.closest(".visually-hidden, .skip")) continue;
    const style = getComputedStyle(e);
    const [fg, bg] = [lum(rgb(style.color)), lum(background(e))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const what = `${e.tagName} "${e.textContent.trim().slice(0, 30)}"`;
    if (ratio < needed) problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${what}`);
  }
  const clipped = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const beyond = [...document.querySelectorAll("body *")].filter((e) => visible(e)
    && e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e));
  for (const e of beyond.slice(0, 5)) {
    const right = Math.round(e.getBoundingClientRect().right);
    problems.push(`${e.tagName}.${e.className} reaches ${right} px`);
  }
  const wide = document.documentElement.scrollWidth - window.innerWidth;
  if (wide > 1) problems.push("page wider than the screen by " + wide + " px");
  return problems;
}"""


def pattern_of(path: str) -> str:
    """One page per kind: ids and query values vary, the template does not."""
    bare = path.split("?", maxsplit=1)[0]
    return re.sub(r"/[^/]*[0-9][^/]*", "/{id}", bare)


def test_every_page_is_accessible_and_fits_a_phone(
    console: ConsoleBrowser, console_stack: Stack, populated: Populated
) -> None:
    with ConsoleHttp(console_stack.url) as ui:
        ui.login()
        pages = crawl(
            ui, ["/ui/", f"/ui/tenants/{populated.tenant}", f"/ui/jobs/{populated.job_id}"]
        )
    kinds: dict[str, str] = {}
    for path, answer in pages.items():
        if "text/html" in answer.headers.get("content-type", ""):
            kinds.setdefault(pattern_of(path), path)
    console.login()
    # the check itself sees what it must: grey text on white, a wide line, an unlabelled field
    console.page.evaluate(
        """() => document.querySelector("main").insertAdjacentHTML("beforeend",
            '<p class="probe">faint</p><input name="probe"><div class="probe-wide"></div>'
            + '<div class="probe-long"></div>')"""
    )
    console.page.evaluate("document.querySelector('.probe').style.color = '#aaaaaa'")
    console.page.evaluate(
        "Object.assign(document.querySelector('.probe-long').style, "
        "{width: '3000px', height: '10px'})"
    )
    console.page.evaluate(
        "Object.assign(document.querySelector('.probe-wide').style, "
        "{position: 'absolute', left: '2000px', width: '10px', height: '10px'})"
    )
    found = " ".join(console.page.evaluate(A11Y_CHECK))
    assert "contrast" in found, found
    assert "unlabelled field probe" in found, found
    assert "wider" in found, found
    assert "probe-long reaches" in found, found
    problems: dict[str, Any] = {}
    for kind, path in sorted(kinds.items()):
        name = re.sub(r"\W+", "-", kind.strip("/")) or "overview"
        for width, viewport in (
            ("desktop", {"width": 1280, "height": 900}),
            ("phone", {"width": 390, "height": 844}),
        ):
            console.page.set_viewport_size(viewport)
            console.goto(path)
            console.page.wait_for_load_state("load")
            found = console.page.evaluate(A11Y_CHECK)
            if found:
                problems[f"{path} ({width})"] = found
            console.screenshot(f"{name}-{width}")
    assert not problems, problems


def test_the_keyboard_reaches_the_navigation_first(console: ConsoleBrowser) -> None:
    console.login()
    console.goto("/ui/")
    console.page.keyboard.press("Tab")
    assert console.page.evaluate("document.activeElement.textContent") == "Skip to content"
    console.page.keyboard.press("Enter")
    assert console.page.evaluate("location.hash") == "#main"
    console.goto("/ui/")
    labels = []
    for _ in range(8):
        console.page.keyboard.press("Tab")
        labels.append(console.page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Overview", "Tenants", "Jobs", "Batches", "Dead letters", "Config"} <= set(labels)
