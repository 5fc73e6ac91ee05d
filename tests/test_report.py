"""`yedge report`: one self-contained HTML page of a workspace. Checked with a parser always and,
where Chromium and Playwright are installed (.ci/run installs them), opened in headless Chromium:
no console errors, no network request, every picture decoded and every section present."""
import base64
import json
import shutil
from html.parser import HTMLParser

import pytest

from yolact_edge_cli.steps import evaluate, report
from yolact_edge_cli.workspace import Workspace

from .conftest import assert_clean_failure, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Page(HTMLParser):
    """What the checks read off the page: sections and their tables and figures, pictures, any
    reference out of the page, and whether every element closes in order."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.sections: dict[str, dict[str, int]] = {}
        self.pictures: list[bytes] = []
        self.outside: list[str] = []
        self.misnested: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections[attrs["id"]] = {"table": 0, "figure": 0}
        elif tag in ("table", "figure") and self.sections:
            self.sections[list(self.sections)[-1]][tag] += 1
        for key in ("src", "href"):
            value = attrs.get(key)
            if value is None:
                continue
            if value.startswith("data:image/png;base64,"):
                self.pictures.append(base64.b64decode(value.split(",", 1)[1]))
            elif not value.startswith("#"):
                self.outside.append(value)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.misnested.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert not page.open and not page.misnested, (page.open, page.misnested)
    assert not page.outside, page.outside  # nothing to fetch: it opens offline
    assert list(page.sections) == list(report.SECTIONS)
    return page


@pytest.fixture(scope="module")
def full(prepared, tmp_path_factory):
    """A workspace where every step the report reads has run: eval (with pictures), bench,
    compare and show."""
    ws = prepared(tmp_path_factory.mktemp("report") / "ws", "yolact_edge_mobilenetv2_config")
    evaluate.run(ws, evaluate.EvalOptions(workers=1))
    for args in (("bench", "--batch-sizes", "1", "--loop", "2", "--warmup", "0"),
                 ("compare", str(ws.outputs_dir / "onnxruntime"), str(ws.default_onnx), "--num-inputs", "2"),
                 ("show", "--num-images", "2")):
        proc = run_cli("-w", ws.root, *args)
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("-w", ws.root, "--json", "report")
    assert proc.returncode == 0, proc.stderr
    return ws, json.loads(proc.stdout)


def test_the_page_holds_every_section_with_its_tables_and_pictures(full):
    ws, result = full
    page = _parse(ws.report)
    assert result["path"] == str(ws.report) and result["bytes"] == ws.report.stat().st_size
    metrics = json.loads((ws.run_results("onnxruntime") / "metrics.json").read_text())
    bench_pictures = [p for p in ("bench_throughput.png", "bench_latency.png") if (ws.results_dir / p).exists()]
    assert len(bench_pictures) == 2
    # the eval's five pictures, the bench's two, show's contact sheet: all embedded, all PNGs
    assert len(page.pictures) == result["pictures"] == len(metrics["pictures"]) + 2 + 1 == 8
    assert all(p.startswith(PNG_SIGNATURE) for p in page.pictures)
    sections = page.sections
    assert sections["models"]["table"] == len(ws.steps_done())
    assert sections["evaluations"]["figure"] == 5 and sections["evaluations"]["table"] >= 4
    assert sections["speed"]["table"] == 2 and sections["speed"]["figure"] == 2  # bench, compare
    assert sections["detections"]["figure"] == 1
    assert sections["doctor"]["table"] == 1
    text = " ".join(page.text)
    for shown in (metrics["provenance"]["model_sha256"][:12], "COCOeval", "YOLACT mAP", "per class",
                  "results/compare.json", "onnxruntime"):
        assert shown in text, shown


def test_numbers_near_1_or_0_keep_their_digits(full):
    ws, _ = full
    compared = json.loads(ws.compare_log.read_text())[-1]
    page = _parse(ws.report)
    text = " ".join(page.text)
    assert f"{max(o['max_abs'] for o in compared['outputs']):.2e}" in text
    assert f"{min(o['cosine'] for o in compared['outputs']):.6f}" in text


def test_a_workspace_that_is_not_there_is_refused_not_made(tmp_path):
    proc = run_cli("-w", tmp_path / "typo", "report")
    assert_clean_failure(proc, "no workspace here", code=3)
    assert not (tmp_path / "typo").exists()


def test_an_empty_workspace_gets_a_page_that_says_what_to_run(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    result = report.run(ws)
    page = _parse(ws.report)
    assert result.pictures == 0 and not page.pictures
    text = " ".join(page.text)
    for hint in ("yedge export", "yedge eval", "yedge bench", "yedge show", "doctor's checks were not run"):
        assert hint in text, hint


def _chromium():
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the parser "
                                                                   "checks above still ran)")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium on this machine (the parser checks above still ran)")
    return playwright, path


def test_the_page_opens_in_headless_chromium_with_no_errors(full):
    playwright, browser_path = _chromium()
    ws, result = full
    problems, requests = [], []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(ws.report.as_uri(), wait_until="load")
            pictures = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.alt])")
            sections = page.evaluate("[...document.querySelectorAll('section')].map(s => "
                                     "[s.id, s.querySelectorAll('table, figure').length])")
            title = page.title()
        finally:
            browser.close()
    assert not problems, problems
    assert [url for url in requests if not url.startswith(("data:", ws.report.as_uri()))] == []
    assert len(pictures) == result["pictures"] and all(done and width > 100 for done, width, _ in pictures)
    assert [s for s, _ in sections] == list(report.SECTIONS) and all(count > 0 for _, count in sections)
    assert title == f"yedge report — {ws.root.name}"
