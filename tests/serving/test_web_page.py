"""The search page in a real headless browser (Debian's chromium and chromium-driver, via Selenium): the first
screen, search, the gallery, adding several files, describe."""

import shutil

import pytest

from captioning.data.synthetic import COLORS
from serving.server import SearchOptions
from tests.search.conftest import colour_png, serving_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -r requirements-dev.txt")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs chromium and chromium-driver (bash scripts/setup.sh --dev installs them)")


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The sandbox needs privileges CI containers lack; the network is closed, so nothing may phone home.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _first_screen_problems(browser) -> list:
    """Broken images (loaded with no pixels) and visible panels without a word in them."""
    return browser.execute_script("""
        const problems = [];
        for (const image of document.querySelectorAll("img")) {
          if (image.offsetParent !== null && image.complete && image.naturalWidth === 0) {
            problems.push("broken image " + (image.alt || image.src));
          }
        }
        for (const panel of document.querySelectorAll("section")) {
          if (panel.offsetParent !== null && !panel.innerText.trim()) problems.push("empty panel #" + panel.id);
        }
        return problems;""")


def _all_images_loaded(browser, selector):
    return all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
               for image in browser.find_elements(By.CSS_SELECTOR, selector))


def test_the_first_screen_has_nothing_broken_or_empty(start_server, fake_export, tmp_path, browser):
    wait = WebDriverWait(browser, 30)
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server:
        url = f"http://127.0.0.1:{server.rest_port}/"
        browser.get(url)  # an empty index
        wait.until(ready.visibility_of_element_located((By.ID, "gallery-empty")))
        assert "No images yet" in browser.find_element(By.ID, "gallery-empty").text
        assert _first_screen_problems(browser) == []
        assert not browser.find_element(By.ID, "description").is_displayed()

        server.search.add("/srv/private/photos/red.png", colour_png("red", size=(48, 48)))
        browser.get(url)
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "1 images"))
        wait.until(lambda _: _all_images_loaded(browser, "#gallery img"))
        assert _first_screen_problems(browser) == []
        assert browser.find_element(By.CSS_SELECTOR, "#gallery .source").text == "red.png"
        assert "/srv/private" not in browser.find_element(By.TAG_NAME, "body").text


def test_search_gallery_add_and_describe_in_the_page(start_server, fake_export, tmp_path, browser):
    wait = WebDriverWait(browser, 30)
    uploads = []
    for name in ("purple", "orange"):
        uploads.append(tmp_path / f"{name}.png")
        uploads[-1].write_bytes(colour_png(name, size=(48, 48)))
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"), allow_private_urls=True)) as server, \
            serving_files({"/blue.png": (200, {}, colour_png("blue", size=(48, 48)))}) as files:
        for name in COLORS:
            if name not in ("purple", "orange"):
                server.search.add(str(tmp_path / "server" / f"{name}.png"), colour_png(name, size=(48, 48)))
        browser.get(f"http://127.0.0.1:{server.rest_port}/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "6 images, model version 1"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "6 images"))
        newest_first = [card.text.splitlines()[0] for card in browser.find_elements(By.CSS_SELECTOR, "#gallery .entry")]
        assert newest_first == [f"{name}.png" for name in reversed(COLORS) if name not in ("purple", "orange")]

        browser.find_element(By.ID, "query").send_keys("a red star left of a blue cross")
        browser.find_element(By.ID, "k").clear()
        browser.find_element(By.ID, "k").send_keys("5")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "5 results"))
        cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
        assert len(cards) == 5
        likelihoods = [float(card.find_element(By.CLASS_NAME, "log_likelihood").text) for card in cards]
        assert likelihoods == sorted(likelihoods, reverse=True)
        assert all(card.find_element(By.CLASS_NAME, "contrastive").text for card in cards)
        # What each score means, on hover; sources by file name, not the server's paths.
        scores = cards[0].find_elements(By.CLASS_NAME, "score")
        assert "log P(text | image)" in scores[0].get_attribute("title")
        assert "Cosine similarity" in scores[1].get_attribute("title")
        assert all(not card.find_element(By.CLASS_NAME, "source").text.startswith("/") for card in cards)
        wait.until(lambda _: _all_images_loaded(browser, "#results img"))

        # Several files at once, with progress; the gallery shows them first.
        browser.find_element(By.ID, "file").send_keys("\n".join(str(path) for path in uploads))
        browser.find_element(By.ID, "add").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "Added 2 of 2 images (0 already in"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "8 images"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "8 images"))
        first = browser.find_elements(By.CSS_SELECTOR, "#gallery .entry")[:2]
        assert [card.text.splitlines()[0] for card in first] == ["upload:orange.png", "upload:purple.png"]

        # Delete from the gallery.
        first[0].find_element(By.CLASS_NAME, "delete").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "7 images"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "7 images"))
        assert server.search.count()["count"] == 7

        browser.execute_script("document.getElementById('file').value = ''")
        browser.find_element(By.ID, "url").send_keys(f"{files}/blue.png")
        browser.find_element(By.ID, "describe").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "captions"), "a blue picture"))
        labels = browser.find_elements(By.CSS_SELECTOR, "#label-list li")
        assert len(labels) == 8 and "blue" in browser.find_element(By.ID, "label-list").text
        assert labels[0].get_attribute("title")
        wait.until(lambda _: _all_images_loaded(browser, "#described-image"))

        browser.find_element(By.ID, "url").clear()
        browser.find_element(By.ID, "url").send_keys("http://127.0.0.1:1/nothing.png")
        browser.find_element(By.ID, "add").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "ConnectionRefusedError"))
        assert browser.find_element(By.ID, "message").get_attribute("class") == "error"

        browser.find_element(By.ID, "search-form").submit()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "5 results"))
        screenshot = tmp_path / "search_page.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 5000
        print(f"screenshot: {screenshot}")

        # Swagger UI renders the generated API from files served by the app (no CDN: the network is closed).
        browser.get(f"http://127.0.0.1:{server.rest_port}/docs")
        wait.until(ready.text_to_be_present_in_element((By.ID, "swagger-ui"), "TF Serving REST API"))
        assert "/api/gallery" in browser.find_element(By.ID, "swagger-ui").text
