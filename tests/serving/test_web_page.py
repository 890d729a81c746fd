"""The search page in a real headless browser (Debian's chromium and chromium-driver, via Selenium), as a user
keeps it open: the first screen, adding and describing, search, the viewer, more like this, delete, 400 px.

Two page sessions carry every check (a browser start costs seconds). Every wait is for a condition on the page;
a race is made certain, not hoped for: the page's requests are counted by a wrapper around fetch, and a search's
answer cannot arrive inside the script that submits it.
"""

import shutil

import pytest

from captioning.data.synthetic import COLORS
from serving.limits import SearchLimits
from serving.server import SearchOptions
from tests.fake_model import export_fake_model
from tests.search.conftest import colour_png, serving_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -r requirements-dev.txt")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs chromium and chromium-driver (bash scripts/setup.sh --dev installs them)",
)
# What the fake model's vocabulary knows: the page flags a label with any other word.
VOCABULARY = [
    "[pad]",
    "[unk]",
    "[start]",
    "[end]",
    "a",
    "picture",
    *COLORS,
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
]
# Counts the page's requests by method and path, so a test can see that a double click sent one.
COUNT_REQUESTS = """
    window.requests = [];
    const original = window.fetch;
    window.fetch = (path, options) => {
      window.requests.push(`${(options && options.method) || "GET"} ${String(path).split("?")[0]}`);
      return original(path, options);
    };"""


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The sandbox needs privileges CI containers lack; the network is closed, so nothing may phone home.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def export_with_vocabulary(tmp_path):
    base_path = tmp_path / "export"
    export_fake_model(str(base_path), 1)
    (base_path / "1" / "assets.extra").mkdir(exist_ok=True)
    (base_path / "1" / "assets.extra" / "vocabulary.txt").write_text("\n".join(VOCABULARY) + "\n")
    return base_path


def _first_screen_problems(browser) -> list:
    """Broken images (loaded with no pixels), visible panels without a word in them, and sideways scrolling."""
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
        const wide = document.documentElement.scrollWidth;
        if (wide > window.innerWidth) problems.push(`${wide} px of page in a ${window.innerWidth} px window`);
        return problems;""")


def _console_errors(browser) -> list:
    """Script errors and failed loads, but not the API's refusals the test asked for (the page words those)."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
        and not ("/api/" in entry["message"] and "Failed to load resource" in entry["message"])
    ]


def _all_images_loaded(browser, selector):
    return all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
        for image in browser.find_elements(By.CSS_SELECTOR, selector)
    )


def _text(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def _requests(browser, wanted):
    return [request for request in browser.execute_script("return window.requests") if request == wanted]


def test_adding_and_describing_from_the_form_then_the_page_at_400_px(
    start_server, export_with_vocabulary, tmp_path, browser
):
    wait = WebDriverWait(browser, 60)
    purple, big, not_image = tmp_path / "purple.png", tmp_path / "big.png", tmp_path / "notes.png"
    purple.write_bytes(colour_png("purple", size=(48, 48)))
    big.write_bytes(b"\x89PNG" + bytes(300_000))
    not_image.write_bytes(b"not an image at all")
    search = SearchOptions(str(tmp_path / "index"), limits=SearchLimits(max_upload_bytes=200_000))
    with (
        start_server(export_with_vocabulary, search=search) as server,
        serving_files({"/blue.png": (200, {}, colour_png("blue", size=(48, 48)))}) as files,
    ):
        browser.get(f"http://127.0.0.1:{server.rest_port}/")  # an empty index
        wait.until(ready.visibility_of_element_located((By.ID, "gallery-empty")))
        assert "No images yet" in _text(browser, "gallery-empty")
        assert _first_screen_problems(browser) == []
        assert _console_errors(browser) == []  # the favicon is found
        browser.execute_script(COUNT_REQUESTS)

        # A file and an address are never both chosen: each clears the other.
        browser.find_element(By.ID, "url").send_keys(f"{files}/blue.png")
        browser.find_element(By.ID, "file").send_keys(str(purple))
        assert browser.find_element(By.ID, "url").get_attribute("value") == ""
        assert _text(browser, "drop-text") == "purple.png"
        browser.find_element(By.ID, "url").send_keys(f"{files}/blue.png")
        assert _text(browser, "drop-text") == "Choose or drop images"
        assert browser.execute_script("return document.getElementById('file').files.length") == 0

        # Enter in the address box describes (the server only fetches public addresses) and adds nothing.
        browser.find_element(By.ID, "url").send_keys(Keys.ENTER)
        wait.until(ready.visibility_of_element_located((By.ID, "viewer")))
        wait.until(
            ready.text_to_be_present_in_element((By.ID, "viewer-message"), "This server only fetches public addresses.")
        )
        assert "allow_private_urls" not in browser.find_element(By.TAG_NAME, "body").text
        assert _requests(browser, "POST /api/images") == [] and server.search.count()["count"] == 0
        browser.find_element(By.ID, "viewer-close").click()

        # Describe an upload: captions, labels as relative confidence, an unknown word flagged, raw scores a click
        # away; Enter in the labels box ranks the labels again.
        browser.find_element(By.ID, "file").send_keys(str(purple))
        browser.find_element(By.ID, "describe").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "captions"), "a purple picture"))
        assert _text(browser, "viewer-name") == "purple.png"
        labels = browser.find_element(By.ID, "labels")
        labels.clear()
        labels.send_keys("red, purple, zebra", Keys.ENTER)
        wait.until(lambda _: len(browser.find_elements(By.CSS_SELECTOR, "#label-list .label")) == 3)
        percents = [int(node.text.rstrip("%")) for node in browser.find_elements(By.CSS_SELECTOR, ".label .percent")]
        assert sorted(percents, reverse=True) == percents and 98 <= sum(percents) <= 102
        flagged = browser.find_elements(By.CSS_SELECTOR, "#label-list .unknown")
        assert [node.find_element(By.CLASS_NAME, "name").text for node in flagged] == ["zebra"]
        assert "does not know “zebra”" in flagged[0].text
        assert not browser.find_element(By.ID, "raw-scores").is_displayed()
        browser.find_element(By.ID, "raw-toggle").click()
        assert "log-likelihood" in _text(browser, "raw-scores") and "zebra" in _text(browser, "raw-scores")
        assert server.search.count()["count"] == 0
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()
        wait.until(ready.invisibility_of_element_located((By.ID, "viewer")))

        # A double click adds once; the new image appears on top of the gallery under its own name.
        ActionChains(browser).double_click(browser.find_element(By.ID, "add")).perform()
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "Added purple.png"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "1 image"))
        assert _requests(browser, "POST /api/images") == ["POST /api/images"]
        assert browser.find_element(By.CSS_SELECTOR, "#gallery .source").text == "purple.png"
        wait.until(lambda _: _all_images_loaded(browser, "#gallery img"))
        assert "/thumbnail" in browser.find_element(By.CSS_SELECTOR, "#gallery img").get_attribute("src")

        # Errors in the user's words: too large (checked before uploading), not an image.
        browser.find_element(By.ID, "file").send_keys(str(big))
        browser.find_element(By.ID, "add").click()
        wait.until(
            ready.text_to_be_present_in_element(
                (By.ID, "message"), "big.png is 0.3 MB: this server takes images up to 0.2 MB."
            )
        )
        browser.find_element(By.ID, "file").send_keys(str(not_image))
        browser.find_element(By.ID, "add").click()
        wait.until(
            ready.text_to_be_present_in_element(
                (By.ID, "message"), "notes.png: This is not an image the model can read"
            )
        )
        assert browser.find_element(By.ID, "message").get_attribute("class") == "error"

        # 400 px wide: no sideways scrolling, on the page or in the viewer.
        browser.set_window_size(400, 800)
        wait.until(lambda _: browser.execute_script("return window.innerWidth") <= 400)
        assert _first_screen_problems(browser) == []
        browser.find_element(By.CSS_SELECTOR, "#gallery .entry").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "captions"), "a purple picture"))
        assert _first_screen_problems(browser) == []
        assert browser.find_element(By.ID, "viewer").size["width"] <= 400
        assert _console_errors(browser) == []


def test_search_the_viewer_more_like_this_and_delete(start_server, fake_export, tmp_path, browser):
    wait = WebDriverWait(browser, 60)
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server:
        for n in range(30):  # two gallery pages; colours so the fake embedding tells them apart
            name = list(COLORS)[n % len(COLORS)]
            red, green, blue = COLORS[name]
            server.search.add(
                f"/srv/private/photos/{name}-{n}.png", colour_png((red, green, min(255, blue + n // len(COLORS))))
            )
        browser.get(f"http://127.0.0.1:{server.rest_port}/")
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "30 images"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "gallery-title"), "30 images"))
        wait.until(lambda _: _all_images_loaded(browser, "#gallery img"))
        assert _first_screen_problems(browser) == []
        assert "/srv/private" not in browser.find_element(By.TAG_NAME, "body").text
        browser.execute_script(COUNT_REQUESTS)

        # The heading names the query that made the results, not what the box says when they arrive; the button
        # is busy meanwhile and a second submit sends nothing.
        busy = browser.execute_script("""
            document.getElementById("query").value = "a red star";
            document.getElementById("search-form").requestSubmit();
            const button = document.getElementById("search");
            const state = [button.disabled, button.getAttribute("aria-busy")];
            document.getElementById("search-form").requestSubmit();
            document.getElementById("query").value = "three gray crosses";
            return state;""")
        assert busy == [True, "true"]
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "12 results"))
        assert _text(browser, "results-title") == "Results for “a red star”"
        assert _requests(browser, "GET /search") == ["GET /search"]
        assert not browser.find_element(By.ID, "results-note").is_displayed()
        assert not browser.find_element(By.ID, "search").get_attribute("disabled")

        # A query nothing matches well says so: the best result's log-likelihood per token is under the server's
        # --poor_match_mean_log_prob. The fake model's is -(1 + brightness) for any text, so the page's copy of the
        # limit is raised above it here; the real model's figures are scripts/poor_match.py's.
        assert browser.execute_script("return limits.poor_match_mean_log_prob") == -4
        browser.execute_script("limits.poor_match_mean_log_prob = -0.5")
        query = browser.find_element(By.ID, "query")
        query.clear()
        query.send_keys("a zebra", Keys.ENTER)
        wait.until(ready.text_to_be_present_in_element((By.ID, "results-title"), "a zebra"))
        assert "Nothing in the collection matches “a zebra” well" in _text(browser, "results-note")
        browser.execute_script("limits.poor_match_mean_log_prob = -4")

        # The viewer from a result: the image large, its facts, captions, its scores for the current query.
        query.clear()
        query.send_keys("red", Keys.ENTER)
        wait.until(ready.text_to_be_present_in_element((By.ID, "results-title"), "“red”"))
        first = browser.find_element(By.CSS_SELECTOR, "#results .result")
        name, opened = first.find_element(By.CLASS_NAME, "source").text, first.get_attribute("data-id")
        first.click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "viewer-query"), "log-likelihood"))
        assert _text(browser, "viewer-query").startswith("For “red”:")
        wait.until(ready.text_to_be_present_in_element((By.ID, "captions"), "picture"))
        assert _text(browser, "viewer-name") == name
        assert "16×16 pixels" in _text(browser, "viewer-facts") and "added" in _text(browser, "viewer-facts")
        wait.until(lambda _: _all_images_loaded(browser, "#viewer-image"))
        assert browser.find_element(By.ID, "viewer-original").get_attribute("href").endswith(f"{opened}/file")

        # More like this: a search from the image's stored embedding, the image itself left out; the nearest is
        # of its colour.
        browser.find_element(By.ID, "viewer-similar").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "results-title"), f"Images like {name}"))
        alike = browser.find_elements(By.CSS_SELECTOR, "#results .result")
        assert len(alike) == 12 and opened not in {card.get_attribute("data-id") for card in alike}
        assert alike[0].find_element(By.CLASS_NAME, "source").text.split("-")[0] == name.split("-")[0]

        # Delete far down the gallery: confirmed, sent once, and the gallery keeps its cards and the user's place.
        browser.find_element(By.ID, "more").click()
        wait.until(lambda _: len(browser.find_elements(By.CSS_SELECTOR, "#gallery .entry")) == 30)
        far = browser.find_elements(By.CSS_SELECTOR, "#gallery .entry")[27]
        gone = far.get_attribute("data-id")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", far)
        place = browser.execute_script("return window.scrollY")
        assert place > 200
        far.click()
        wait.until(ready.visibility_of_element_located((By.ID, "viewer-delete")))
        browser.find_element(By.ID, "viewer-delete").click()
        wait.until(ready.alert_is_present()).dismiss()  # asked first; "no" deletes nothing
        assert _requests(browser, f"DELETE /api/images/{gone}") == []
        browser.execute_script("""  // "yes", twice at once
            window.confirm = () => true;
            document.getElementById("viewer-delete").click();
            document.getElementById("viewer-delete").click();""")
        wait.until(ready.text_to_be_present_in_element((By.ID, "message"), "Deleted"))
        wait.until(ready.text_to_be_present_in_element((By.ID, "count"), "29 images"))
        assert _requests(browser, f"DELETE /api/images/{gone}") == [f"DELETE /api/images/{gone}"]
        assert browser.find_element(By.ID, "message").get_attribute("class") != "error"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery .entry")) == 29
        assert abs(browser.execute_script("return window.scrollY") - place) < 300
        assert server.search.count()["count"] == 29
        assert _console_errors(browser) == []

        # Swagger UI renders the generated API from files served by the app (no CDN: the network is closed).
        browser.get(f"http://127.0.0.1:{server.rest_port}/docs")
        wait.until(ready.text_to_be_present_in_element((By.ID, "swagger-ui"), "TF Serving REST API"))
        assert "/api/images/{image_id}/similar" in browser.find_element(By.ID, "swagger-ui").text
