"""The search page in a real headless browser (Debian's chromium and chromium-driver, via Selenium)."""

import shutil

import pytest

from captioning.data.synthetic import COLORS
from serving.server import SearchOptions
from tests.search.conftest import colour_png, serving_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -r requirements-dev.txt")
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


def test_search_add_and_describe_in_the_page(start_server, fake_export, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    upload = tmp_path / "purple.png"
    upload.write_bytes(colour_png("purple", size=(48, 48)))
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"), allow_private_urls=True)) as server, \
            serving_files({"/blue.png": (200, {}, colour_png("blue", size=(48, 48)))}) as files:
        for name in COLORS:
            if name != "purple":
                server.search.add(f"{name}.png", colour_png(name, size=(48, 48)))
        browser.get(f"http://127.0.0.1:{server.rest_port}/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "7 images, model version 1"))

        browser.find_element(By.ID, "query").send_keys("a red star left of a blue cross")
        browser.find_element(By.ID, "k").clear()
        browser.find_element(By.ID, "k").send_keys("6")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "6 results"))
        cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
        assert len(cards) == 6
        likelihoods = [float(card.find_element(By.CLASS_NAME, "log_likelihood").text) for card in cards]
        assert likelihoods == sorted(likelihoods, reverse=True)
        assert all(card.find_element(By.CLASS_NAME, "contrastive").text for card in cards)
        # Every thumbnail loaded (naturalWidth is 0 for a broken image).
        wait.until(lambda _: all(browser.execute_script("return arguments[0].naturalWidth", image) == 48
                                 for image in browser.find_elements(By.CSS_SELECTOR, "#results img")))

        browser.find_element(By.ID, "file").send_keys(str(upload))
        browser.find_element(By.ID, "add").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "Added upload:purple.png"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "8 images"))

        browser.execute_script("document.getElementById('file').value = ''")
        browser.find_element(By.ID, "url").send_keys(f"{files}/blue.png")
        browser.find_element(By.ID, "describe").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "captions"), "a blue picture"))
        labels = browser.find_elements(By.CSS_SELECTOR, "#label-list li")
        assert len(labels) == 8 and "blue" in browser.find_element(By.ID, "label-list").text

        browser.find_element(By.ID, "url").clear()
        browser.find_element(By.ID, "url").send_keys("http://127.0.0.1:1/nothing.png")
        browser.find_element(By.ID, "add").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "ConnectionRefusedError"))
        assert browser.find_element(By.ID, "message").get_attribute("class") == "error"

        browser.find_element(By.ID, "search-form").submit()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "6 results"))
        screenshot = tmp_path / "search_page.png"
        assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 5000
        print(f"screenshot: {screenshot}")

        # Swagger UI renders the generated API from files served by the app (no CDN: the network is closed).
        browser.get(f"http://127.0.0.1:{server.rest_port}/docs")
        wait.until(ready.text_to_be_present_in_element((By.ID, "swagger-ui"), "TF Serving REST API"))
        assert "/api/describe" in browser.find_element(By.ID, "swagger-ui").text
