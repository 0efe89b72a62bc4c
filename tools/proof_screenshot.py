"""Regenerate the proof pictures in docs/img/, in Debian's headless Chromium (the browser
the tests use, tests/browser.py). Not a test; run it by hand after changing a renderer:

    .venv/bin/python tools/proof_screenshot.py

- proof-html.png: the page of `reasoner why 'recommend(p01, A)'
  facts/p01_grade2_first_dose.facts --format html`, the first two proofs partly unfolded;
- proof-dose.svg and proof-dose.png (README): `reasoner why 'dose_mg(p01, tocilizumab, M)'
  facts/p01_grade2_first_dose.facts --depth 5 --format dot | dot -Tsvg`, when Graphviz's
  `dot` is installed (apt-get install graphviz).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

SHOWN_OPEN = ["n1", "n1.1", "n1.1.1", "n1.1.1.1", "n1.1.1.2", "n2", "n2.1"]
"""Steps left unfolded: the grading's first levels, and the second proof's back-reference to it."""


def main() -> None:
    import browser

    reason = browser.unavailable()
    if reason:
        sys.exit(reason)
    os.chdir(ROOT)  # so the pictures name the fact file as facts/..., as a user would type it
    with tempfile.TemporaryDirectory() as tmp:
        driver = browser.start(Path(tmp) / "profile", width=1100, height=900)
        try:
            html_page(driver, Path(tmp), ROOT / "docs" / "img" / "proof-html.png")
            if shutil.which("dot"):
                dot_graph(driver, Path(tmp), ROOT / "docs" / "img" / "proof-dose")
            else:
                print("dot not found (apt-get install graphviz): proof-dose.png left as it is")
        finally:
            driver.quit()


def reasoner(*args: str) -> str:
    from click.testing import CliRunner

    from reasoner.cli import main as cli
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def html_page(driver, tmp: Path, out: Path) -> None:
    page = tmp / "proof.html"
    page.write_text(reasoner("why", "recommend(p01, A)", "facts/p01_grade2_first_dose.facts", "--format", "html"),
                    encoding="utf-8")
    driver.get(page.as_uri())
    driver.execute_script(
        "document.querySelectorAll('main details').forEach(function (d) { d.open = false; });"
        "arguments[0].forEach(function (id) {"
        "  document.getElementById(id).querySelector(':scope > details').open = true; });",
        SHOWN_OPEN)
    shoot(driver, 1100, out)


def dot_graph(driver, tmp: Path, out: Path) -> None:
    dot = reasoner("why", "dose_mg(p01, tocilizumab, M)", "facts/p01_grade2_first_dose.facts", "--depth", "5",
                   "--format", "dot")
    svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True).stdout
    out.with_suffix(".svg").write_text(svg, encoding="utf-8")
    page = tmp / "graph.html"
    page.write_text(f'<!DOCTYPE html><body style="margin:0"><img src="{out.with_suffix(".svg").as_uri()}" '
                    f'style="width:1400px;display:block"></body>', encoding="utf-8")
    driver.get(page.as_uri())
    driver.set_window_size(1500, 1200)
    driver.find_element("tag name", "img").screenshot(str(out.with_suffix(".png")))
    print(f"wrote {out.with_suffix('.png').relative_to(ROOT)}")


def shoot(driver, width: int, out: Path) -> None:
    """A picture of the whole page (at most 2,400 pixels high), `width` pixels wide."""
    driver.set_window_size(width, 900)
    height = min(driver.execute_script("return document.documentElement.scrollHeight"), 2400)
    driver.set_window_size(width, height)
    frame = height - driver.execute_script("return window.innerHeight")  # the window's own frame
    driver.set_window_size(width, height + frame)
    driver.save_screenshot(str(out))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
