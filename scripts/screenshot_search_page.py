"""Screenshots of the search page with a trained model: the first screen, a search, the viewer, and 400 px wide.

    python scripts/screenshot_search_page.py --model_dir checkpoints/export --out_dir docs

Indexes --images unseen synthetic scenes (files named scene-NNNN.png) into a temporary index, starts
`python -m serving.server` on it, and drives headless Chromium (Debian's chromium and chromium-driver, as
tests/serving/test_web_page.py does) to write search_gallery.png, search_results.png, search_viewer.png and
search_narrow.png.
"""

import argparse
import os
import sys
import tempfile

from captioning.data import synthetic
from captioning.util import cli
from captioning.util.local_ports import child_server, embedded_server_command, free_port

SEED = 7_000_003  # scenes no training run uses
QUERY = "a red circle left of a blue square"


def build_index(model_dir, index_dir, scene_dir, count):
    from captioning.search import sources
    from captioning.search.index import ImageIndex
    from captioning.search.indexing import Indexer
    from captioning.search.search_model import open_local

    os.makedirs(scene_dir)
    for n, scene in enumerate(synthetic.generate_scenes(count, seed=SEED)):
        with open(os.path.join(scene_dir, f"scene-{n:04d}.png"), "wb") as f:
            f.write(synthetic.render_scene_png(scene, 64))
    index = ImageIndex(index_dir)
    try:
        Indexer(index, open_local(model_dir)).add(sources.expand([scene_dir]))
    finally:
        index.close()


def browser(window):
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def screenshots(url, out_dir, window):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(window)
    wait = WebDriverWait(driver, 120)

    def save(name):
        if not driver.save_screenshot(os.path.join(out_dir, name)):
            raise OSError(f"could not write {os.path.join(out_dir, name)}")

    def images_loaded(_):
        return all(
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
            for image in driver.find_elements(By.CSS_SELECTOR, "img")
            if image.is_displayed()
        )

    try:
        driver.get(url)
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "images"))
        wait.until(images_loaded)
        save("search_gallery.png")
        driver.find_element(By.ID, "query").send_keys(QUERY, Keys.ENTER)
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "results"))
        wait.until(images_loaded)
        save("search_results.png")
        driver.find_element(By.CSS_SELECTOR, "#results .result").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "viewer-query"), "log-likelihood"))
        wait.until(lambda _: driver.find_elements(By.CSS_SELECTOR, "#label-list .label"))
        wait.until(images_loaded)
        save("search_viewer.png")
        driver.find_element(By.ID, "viewer-close").click()
        driver.set_window_size(400, 900)
        driver.get(url)
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "images"))
        wait.until(images_loaded)
        save("search_narrow.png")
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", default=os.path.join("checkpoints", "export"))
    parser.add_argument("--out_dir", default="docs")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--window", default="1100,900")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        index_dir, scene_dir = os.path.join(work, "index"), os.path.join(work, "scenes")
        build_index(args.model_dir, index_dir, scene_dir, args.images)
        rest_port = free_port()
        command = embedded_server_command(args.model_dir, rest_port, f"--index_dir={index_dir}")
        with child_server(command, rest_port, timeout_seconds=600):
            screenshots(f"http://127.0.0.1:{rest_port}/", args.out_dir, args.window)
    print(f"wrote search_gallery.png, search_results.png, search_viewer.png and search_narrow.png to {args.out_dir}")


if __name__ == "__main__":
    sys.exit(cli.call(main))
