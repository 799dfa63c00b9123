"""What the console ships (docs/console.md#charts-and-the-chart-library): the vendored chart
library as its README records it, with its licence, installed with the package; our own
script free of what the CSP refuses; every template parses."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from anygate.api.console.render import environment, static_url

STATIC = resources.files("anygate.api.console").joinpath("static")


def test_the_vendored_chart_library_is_the_one_its_readme_names() -> None:
    vendor = STATIC.joinpath("vendor", "uplot")
    readme = vendor.joinpath("README.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"`([\w.]+)` `([0-9a-f]{64})`", readme))
    assert set(recorded) == {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"}
    for name, digest in recorded.items():
        assert hashlib.sha256(vendor.joinpath(name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in vendor.joinpath("LICENSE").read_text(encoding="utf-8")


def test_our_script_needs_no_eval_and_loads_nothing_from_elsewhere() -> None:
    script = STATIC.joinpath("console.js").read_text(encoding="utf-8")
    assert not re.search(r"\beval\(|new Function", script)
    # one place takes HTML: a fragment the server rendered (escaped) for a live page
    assert re.findall(r"innerHTML\s*=\s*([\w.]+)", script) == ["update.html"]
    assert "http://" not in script
    assert "https://" not in script
    sheet = STATIC.joinpath("console.css").read_text(encoding="utf-8")
    assert "@import" not in sheet
    assert "url(http" not in sheet


def test_every_template_parses_and_static_urls_carry_their_hash() -> None:
    env = environment()
    names = env.list_templates()
    assert "base.html" in names
    for name in names:
        env.get_template(name)
    url = static_url("console.js")
    assert re.fullmatch(r"/ui/static/console\.js\?v=[0-9a-f]{12}", url)
