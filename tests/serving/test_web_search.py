"""The search, index, label, caption and score API on the server's REST port, and its docs."""

import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from captioning.data.synthetic import COLORS
from serving.server import SearchOptions
from tests.fake_model import export_fake_model
from tests.search.conftest import colour_png, serving_files


@pytest.fixture(scope="module")
def server(start_server, fake_export, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("web_index")
    with start_server(fake_export, search=SearchOptions(str(index_dir), allow_private_urls=True)) as server:
        yield server


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=60) as client:
        yield client


def upload(http, data, name="image.png"):
    return http.post("/api/images", files={"file": (name, data, "image/png")})


@pytest.fixture(scope="module")
def colour_ids(http):
    ids = {}
    for name in COLORS:
        response = upload(http, colour_png(name), f"{name}.png")
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def test_uploads_are_added_once(http, colour_ids):
    again = upload(http, colour_png("red"), "red-again.png")
    assert again.status_code == 200 and again.json() == {
        "id": colour_ids["red"],
        "added": False,
        "source": "upload:red-again.png",
    }
    assert http.get("/api/images/count").json() == {"count": len(COLORS), "model_version": 1}
    listed = http.get("/api/images", params={"limit": 3}).json()
    assert len(listed["images"]) == 3 and listed["next_offset"]
    image = http.get(f"/api/images/{colour_ids['blue']}/file")
    assert image.headers["content-type"] == "image/png" and image.content == colour_png("blue")


def test_search_returns_both_scores_best_first(http, colour_ids):
    response = http.get("/search", params={"q": "a red star", "k": 1, "candidates": 1})
    assert response.status_code == 200
    (red,) = response.json()
    assert red["id"] == colour_ids["red"] and red["source"] == "upload:red.png"
    assert red["contrastive"] > 0.9 and red["log_likelihood"] < 0
    # Per token, the fake model's three-word query: comparable across texts, what the page's notice reads.
    assert red["mean_log_prob"] == pytest.approx(red["log_likelihood"] / 3, rel=1e-5)
    rows = http.get("/search", params={"q": "a blue cross", "k": 5}).json()
    assert len(rows) == 5
    assert [r["log_likelihood"] for r in rows] == sorted((r["log_likelihood"] for r in rows), reverse=True)


def test_add_from_url_and_describe_and_score(http):
    dark = colour_png((20, 20, 90))
    with serving_files({"/dark.png": (200, {}, dark)}) as base:
        added = http.post("/api/images", data={"url": f"{base}/dark.png"})
        assert added.status_code == 201 and added.json()["source"] == f"{base}/dark.png"
        described = http.post("/api/describe", data={"url": f"{base}/dark.png", "labels": "red,blue, green"})
    assert described.status_code == 200, described.text
    body = described.json()
    # The fake model's log-likelihood ignores colour words, so the labels tie; the real model's would not.
    assert sorted(label["label"] for label in body["labels"]) == ["blue", "green", "red"]
    assert {label["prompt"] for label in body["labels"]} >= {"a blue"}
    assert sum(label["confidence"] for label in body["labels"]) == pytest.approx(1.0)
    assert all(label["unknown_words"] is None for label in body["labels"])  # the fake export has no vocabulary
    assert body["captions"][0]["caption"] == "a blue picture"
    by_id = http.post("/api/describe", data={"id": added.json()["id"]}).json()
    assert by_id["labels"] == [] and by_id["captions"][0]["caption"] == "a blue picture"
    scores = http.post("/api/score", data={"id": added.json()["id"], "text": ["a dog", "a blue dog"]}).json()
    assert [row["text"] for row in scores] == ["a dog", "a blue dog"]
    assert scores[0]["scores"]["num_tokens"] == 2 and "contrastive" in scores[1]["scores"]


@pytest.mark.parametrize(
    "method, path, kwargs, status, message",
    [
        ("GET", "/search", {}, 400, "query q: Field required"),
        (
            "GET",
            "/search",
            {"params": {"q": "red", "k": 0}},
            400,
            "query k: Input should be greater than or equal to 1",
        ),
        ("GET", "/search", {"params": {"q": "  "}}, 400, "the query has no words to search for"),
        (
            "POST",
            "/api/images",
            {"files": {"file": ("x.png", b"not an image", "image/png")}},
            400,
            "not a readable image (JPEG, PNG, BMP, GIF or WebP)",
        ),
        ("POST", "/api/images", {}, 400, "give exactly one of file (an upload), url or id"),
        (
            "POST",
            "/api/images",
            {"data": {"url": "ftp://example.com/a.png"}},
            400,
            "ftp://example.com/a.png: only http and https URLs can be fetched",
        ),
        ("POST", "/api/describe", {"data": {"id": "nope"}}, 404, "no image with id nope in the index"),
        ("DELETE", "/api/images/nope", {}, 404, "no image with id nope in the index"),
        ("POST", "/api/reindex", {}, 409, "nothing to re-index: no images of another model version"),
        ("GET", "/nowhere", {}, 404, "Not found: /nowhere"),
    ],
)
def test_bad_input_is_a_4xx_with_a_json_error(http, colour_ids, method, path, kwargs, status, message):
    response = http.request(method, path, **kwargs)
    assert (response.status_code, response.json()) == (status, {"error": message})
    assert http.get("/api/images/count").status_code == 200  # and the service stays up


def test_delete(http):
    added = upload(http, colour_png((1, 2, 3)), "gone.png").json()
    assert http.get(f"/api/images/{added['id']}/thumbnail").status_code == 200
    assert http.delete(f"/api/images/{added['id']}").status_code == 204
    for route in ("file", "thumbnail", "similar"):
        assert http.get(f"/api/images/{added['id']}/{route}").status_code == 404


def _photo_jpeg(width, height) -> bytes:
    """A smooth photo-like JPEG: gradients, so a thumbnail's size shows in its bytes."""
    x, y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    pixels = np.stack([x, y, (x + y) / 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_thumbnails_are_small_cached_with_the_index_and_gone_with_the_image(http, server):
    photo = _photo_jpeg(3000, 2000)
    added = upload(http, photo, "big.jpg").json()
    first = http.get(f"/api/images/{added['id']}/thumbnail")
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert "immutable" in first.headers["cache-control"] and len(first.content) < len(photo) / 20
    with Image.open(io.BytesIO(first.content)) as thumbnail:
        assert thumbnail.size == (192, 128)
    digest = first.headers["etag"].strip('"')
    thumbnails = Path(server.search.index.index_dir) / "thumbnails"
    assert [path.stem for path in thumbnails.rglob("*.webp")] == [digest]  # kept with the index, by content
    again = http.get(f"/api/images/{added['id']}/thumbnail", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content
    small = http.get(f"/api/images/{upload(http, colour_png('green', size=(48, 40)), 'g.png').json()['id']}/thumbnail")
    with Image.open(io.BytesIO(small.content)) as thumbnail:
        assert thumbnail.size == (48, 40)  # never enlarged: the page draws small originals with sharp pixels
    assert http.delete(f"/api/images/{added['id']}").status_code == 204
    assert digest not in {path.stem for path in thumbnails.rglob("*.webp")}


def test_more_like_this_searches_by_the_stored_embedding(http, colour_ids):
    reddish = upload(http, colour_png((210, 40, 35)), "reddish.png").json()["id"]
    rows = http.get(f"/api/images/{colour_ids['red']}/similar", params={"k": 3}).json()
    assert len(rows) == 3 and colour_ids["red"] not in {row["id"] for row in rows}
    similarities = [row["similarity"] for row in rows]
    assert similarities == sorted(similarities, reverse=True)
    # The fake embedding places an image by its colour: the other red is the nearest.
    assert rows[0]["id"] == reddish and rows[0]["source"] == "upload:reddish.png" and similarities[0] > 0.9
    assert http.get(f"/api/images/{colour_ids['red']}/similar", params={"k": 1000}).status_code == 400


def test_the_page_can_read_the_limits(http):
    assert http.get("/api/limits").json() == {
        "max_upload_bytes": 20 * 2**20,
        "max_image_pixels": 40_000_000,
        "max_labels": 100,
        "max_results": 100,
        "fetches_private_urls": True,
        "poor_match_mean_log_prob": -4.0,
    }


def test_the_gallery_pages_newest_first_and_shows_no_server_paths(start_server, fake_export, tmp_path):
    with start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server:
        for name in ("red", "green", "blue"):
            server.search.add(f"/srv/photos/{name}.png", colour_png(name))
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}") as client:
            first = client.get("/api/gallery", params={"limit": 2}).json()
            assert first["count"] == 3 and first["next_before"] is not None
            rest = client.get("/api/gallery", params={"limit": 2, "before": first["next_before"]}).json()
            assert rest["next_before"] is None
            shown = [entry["payload"]["source"] for entry in first["images"] + rest["images"]]
            assert shown == ["blue.png", "green.png", "red.png"]
            found = client.get("/search", params={"q": "red", "k": 3}).json()
            listed = client.get("/api/images").json()["images"]
        assert {row["source"] for row in found} == {row["payload"]["source"] for row in found} == set(shown)
        assert {entry["payload"]["source"] for entry in listed} == set(shown)


def test_openapi_swagger_ui_and_page(http):
    spec = http.get("/v1/openapi.json").json()
    assert {"/search", "/api/images", "/api/describe", "/v1/models/{model_name}:predict"} <= set(spec["paths"])
    assert spec["paths"]["/search"]["get"]["responses"]["200"]
    docs = http.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert http.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    page = http.get("/")
    assert page.status_code == 200 and 'id="search-form"' in page.text


def test_urls_to_private_hosts_are_refused_without_the_flag(start_server, fake_export, tmp_path):
    with (
        start_server(fake_export, search=SearchOptions(str(tmp_path / "index"))) as server,
        serving_files({"/red.png": (200, {}, colour_png("red"))}) as base,
    ):
        response = httpx.post(f"http://127.0.0.1:{server.rest_port}/api/images", data={"url": f"{base}/red.png"})
    assert response.status_code == 400
    assert "is a private, loopback or link-local address (127.0.0.1); refused" in response.json()["error"]


def test_a_new_model_version_asks_for_reindexing(start_server, tmp_path):
    base_path = tmp_path / "export"
    export_fake_model(str(base_path), 1)
    with start_server(base_path, search=SearchOptions(str(tmp_path / "index"))) as server:
        url = f"http://127.0.0.1:{server.rest_port}"
        assert httpx.post(f"{url}/api/images", files={"file": ("r.png", colour_png("red"))}).status_code == 201
        export_fake_model(str(base_path), 2)
        deadline = time.monotonic() + 30
        while server.registry.get("captioner").version != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        changed = httpx.get(f"{url}/search", params={"q": "red"})
        assert changed.status_code == 409
        assert "images embedded by model version 1, but the model is version 2" in changed.json()["error"]
        # Listing, counting and deleting say so too, instead of an empty page, 0 and 404.
        for response in (
            httpx.get(f"{url}/api/images"),
            httpx.get(f"{url}/api/images/count"),
            httpx.delete(f"{url}/api/images/00000000-0000-0000-0000-000000000000"),
        ):
            assert response.status_code == 409 and "re-index" in response.json()["error"]
        reindexed = httpx.post(f"{url}/api/reindex", timeout=60)
        assert reindexed.json() == {"from_version": 1, "model_version": 2, "added": 1, "errors": []}
        (found,) = httpx.get(f"{url}/search", params={"q": "red"}).json()
        assert found["payload"]["model_version"] == 2


def test_describe_and_search_use_the_stored_alpha_as_the_command_line_does(start_server, tmp_path):
    base_path = tmp_path / "export"
    export_fake_model(str(base_path), 1)
    dark = colour_png((20, 20, 30))
    # The fake model: log_likelihood -n(1 + brightness), prior -1.5n for a prompt of n words, so log_likelihood
    # prefers the short label and debiased with alpha 0.9 (n (0.35 - brightness)) the long one.
    with start_server(base_path, search=SearchOptions(str(tmp_path / "index"))) as server:
        plain = httpx.post(
            f"http://127.0.0.1:{server.rest_port}/api/describe",
            files={"file": ("d.png", dark)},
            data={"labels": "cat,big black cat"},
        ).json()
    assert [label["label"] for label in plain["labels"]] == ["cat", "big black cat"]
    (base_path / "1" / "assets.extra").mkdir(exist_ok=True)
    (base_path / "1" / "assets.extra" / "ranking.json").write_text('{"alpha": 0.9, "use_by_default": true}')
    (base_path / "1" / "assets.extra" / "vocabulary.txt").write_text("[pad]\n[unk]\n[start]\n[end]\na\nblack\ncat\n")
    with start_server(base_path, search=SearchOptions(str(tmp_path / "index"))) as server:
        url = f"http://127.0.0.1:{server.rest_port}"
        stored = httpx.post(
            f"{url}/api/describe", files={"file": ("d.png", dark)}, data={"labels": "cat,big black cat"}
        ).json()
        assert httpx.post(f"{url}/api/images", files={"file": ("d.png", dark)}).status_code == 201
        (found,) = httpx.get(f"{url}/search", params={"q": "a dark shape", "rank_by": "debiased"}).json()
    assert [label["label"] for label in stored["labels"]] == ["big black cat", "cat"]
    for row in stored["labels"] + [found]:  # debiased = log_likelihood - alpha * prior, the prior = ll - pmi
        assert row["score"] == pytest.approx(row["log_likelihood"] - 0.9 * (row["log_likelihood"] - row["pmi"]))
    # Relative confidence from the scores the labels are ranked by; the word the vocabulary lacks is named.
    assert stored["labels"][0]["confidence"] / stored["labels"][1]["confidence"] == pytest.approx(
        np.exp(stored["labels"][0]["score"] - stored["labels"][1]["score"]), rel=1e-4
    )
    assert [label["unknown_words"] for label in stored["labels"]] == [["big"], []]


def test_the_server_command_serves_search_docs_and_page(tmp_path, fake_export, free_port):
    import os
    import subprocess
    import sys

    from captioning.util.local_ports import wait_for_port

    rest_port = free_port()
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.server",
            f"--model_base_path={fake_export}",
            f"--index_dir={tmp_path / 'i'}",
            f"--port={free_port()}",
            f"--rest_api_port={rest_port}",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    try:
        wait_for_port(rest_port, process, timeout_seconds=120)
        url = f"http://127.0.0.1:{rest_port}"
        assert httpx.post(f"{url}/api/images", files={"file": ("r.png", colour_png("red"))}).status_code == 201
        (found,) = httpx.get(f"{url}/search", params={"q": "a red star", "k": 5}).json()
        assert set(found) >= {"id", "source", "contrastive", "log_likelihood"}
        assert httpx.get(f"{url}/docs").status_code == 200 and httpx.get(f"{url}/").status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
        log.close()
