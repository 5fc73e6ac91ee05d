"""The README's pictures from the demo's workspace (`make readme-pictures`): its box PR curves as
eval drew them, and the top of `yedge report`'s page as headless Chromium shows it."""
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent


def main(workspace: Path) -> None:
    shutil.copy(workspace / "results" / "onnxruntime" / "pr_bbox.png", HERE / "pr-example.png")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        sys.exit("no Chromium: apt-get install chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 1500})
        page.goto((workspace / "results" / "report.html").absolute().as_uri())
        top = page.evaluate("document.querySelector('#evaluations').getBoundingClientRect().top + window.scrollY")
        page.screenshot(path=str(HERE / "report-example.png"), full_page=True,
                        clip={"x": 0, "y": top - 10, "width": 1200, "height": 1000})
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
