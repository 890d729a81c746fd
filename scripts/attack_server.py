"""Replays hostile and careless requests against `python -m serving.server --index_dir` on loopback and prints,
for each attack, the answer (status), the time it took and how much the server's resident memory grew.

    python scripts/attack_server.py --model_base_path checkpoints/export
    python scripts/attack_server.py --model_base_path M --repo before=/path/to/old/checkout --repo after=.

Each `--repo NAME=PATH` runs the server from that checkout (default: this one), so one run gives a before/after
table. Every attack is bounded: a client timeout, a cap on the server's memory growth (`--memory_cap_mb`; the server
is killed and restarted past it) and small sizes (beam 5000, not 100000). Loopback only: the server binds
127.0.0.1, and the slow and credential URLs point at a server this script runs on 127.0.0.1.
"""

import argparse
import base64
import contextlib
import functools
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from captioning.util.local_ports import embedded_server_command, free_port, stop_process

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "captioner"
TOKEN = "attack-driver-token"
DRIP_SECONDS = 30  # a slow URL sends one byte every 2 s for this long, then closes
GIF_FRAMES, GIF_SIDE = 200, 2000


def png(rgb=(200, 30, 30), size=(16, 16)):
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def animated_gif():
    """GIF_FRAMES full frames of GIF_SIDE x GIF_SIDE alternating two colours: under 1 MB, 800 million pixels."""
    frames = []
    for index in (0, 1):
        frame = Image.new("P", (GIF_SIDE, GIF_SIDE), index)
        frame.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        duration=50,
        optimize=False,
        disposal=1,
        append_images=(frames[(n + 1) % 2] for n in range(GIF_FRAMES - 1)),
    )
    return buffer.getvalue()


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


# ---------------------------------------------------------------------------------------------------------------
# A loopback file server: images, and URLs that drip one byte every 2 s.


class _Files(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    images = {}

    def do_GET(self):
        if self.path.startswith("/drip"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            stop_at = time.monotonic() + DRIP_SECONDS
            try:
                while time.monotonic() < stop_at:
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(2)
            except OSError:
                pass
            self.close_connection = True
            return
        body = self.images.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def file_server(images):
    handler = type("Files", (_Files,), {"images": images})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------------------------
# The server under attack.


class Server:
    """`python -m serving.server` from `repo` on loopback; restartable."""

    def __init__(self, repo, model_base_path, work_dir, extra_flags=()):
        self.repo, self.model_base_path, self.work_dir = repo, model_base_path, work_dir
        self.extra_flags = list(extra_flags)
        self.process = None
        self.port = None
        self.starts = 0

    def start(self):
        self.port, self.grpc_port = free_port(), free_port()
        self.starts += 1
        index_dir = os.path.join(self.work_dir, f"index{self.starts}")
        command = embedded_server_command(
            self.model_base_path,
            self.port,
            f"--index_dir={index_dir}",
            "--max_request_bytes=16777216",
            *self.extra_flags,
            grpc_port=self.grpc_port,
        )
        self.log = open(os.path.join(self.work_dir, f"server{self.starts}.log"), "w")
        self.process = subprocess.Popen(command, cwd=self.repo, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600  # a loaded 2-core machine can take minutes to load TensorFlow
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/v1/models/{MODEL}", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        if self.process.poll() is None:
            self.kill()  # not left running behind the script
        raise SystemExit(f"the server in {self.repo} did not start; see {self.log.name}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.process and self.alive():
            stop_process(self.process, grace_seconds=30)
        self.log.close()

    def kill(self):
        self.process.kill()
        self.process.wait()


class MemoryWatch:
    """Samples the server's RSS while an attack runs; kills the server past `cap_mb` of growth."""

    def __init__(self, server, cap_mb):
        self.server, self.cap_mb = server, cap_mb
        self.baseline = rss_mb(server.pid)
        self.peak = self.baseline
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.wait(0.02):
            now = rss_mb(self.server.pid)
            self.peak = max(self.peak, now)
            if now - self.baseline > self.cap_mb and self.server.alive():
                self.killed = True
                self.server.kill()
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self):
        return self.peak - self.baseline


# ---------------------------------------------------------------------------------------------------------------
# The attacks. Each takes a Context and returns a short description of the answer.


class Context:
    def __init__(self, server, files_port, images):
        self.server, self.files_port, self.images = server, files_port, images

    @property
    def url(self):
        return self.server.url

    def client(self, timeout=60, **kwargs):
        return httpx.Client(base_url=self.url, timeout=timeout, **kwargs)


def _predict(ctx, body, timeout=90):
    with ctx.client(timeout) as http:
        response = http.post(f"/v1/models/{MODEL}:predict", content=body, headers={"Content-Type": "application/json"})
    return _answer(response)


def _answer(response, key="error"):
    try:
        message = response.json().get(key, "") if response.status_code >= 400 else ""
    except (ValueError, AttributeError):
        message = response.text
    return f"{response.status_code} {message}"[:100].strip()


def attack_beam(ctx):
    image = base64.b64encode(png()).decode()
    return _predict(
        ctx,
        json.dumps(
            {
                "signature_name": "generate_caption",
                "inputs": {"image_bytes": [{"b64": image}], "beam_size": 5000, "max_length": 0, "length_penalty": 0.0},
            }
        ),
    )


def attack_rows(ctx):
    image = base64.b64encode(png(size=(64, 64))).decode()
    return _predict(
        ctx, json.dumps({"signature_name": "encode_image", "inputs": {"image_bytes": [{"b64": image}] * 4000}})
    )


def _chunks(total, size=1 << 20):
    sent = 0
    while sent < total:
        yield b"\0" * min(size, total - sent)
        sent += size


def attack_chunked_predict(ctx):
    with ctx.client() as http:  # a generator body goes out chunked, with no Content-Length
        return _answer(http.post(f"/v1/models/{MODEL}:predict", content=_chunks(64 << 20)))


def attack_chunked_upload(ctx):
    boundary = b"attack"

    def body():
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        yield from _chunks(200 << 20)
        yield b"\r\n--" + boundary + b"--\r\n"

    with ctx.client() as http:
        try:
            return _answer(
                http.post(
                    "/api/images", content=body(), headers={"Content-Type": "multipart/form-data; boundary=attack"}
                )
            )
        except httpx.HTTPError as error:  # the server may close the connection mid-upload after its 413
            return f"connection closed: {type(error).__name__}"


def attack_gif(ctx):
    with ctx.client() as http:
        return _answer(http.post("/api/images", files={"file": ("anim.gif", animated_gif(), "image/gif")}))


def attack_drip_url(ctx):
    with ctx.client(DRIP_SECONDS + 30) as http:
        return _answer(http.post("/api/images", data={"url": f"http://127.0.0.1:{ctx.files_port}/drip/one"}))


def attack_drip_flood(ctx):
    """45 slow URLs at once, then the time of GET /api/images/count (in the time column) and of the page."""

    def add(n):
        try:
            with ctx.client(DRIP_SECONDS + 30) as http:
                return http.post("/api/images", data={"url": f"http://127.0.0.1:{ctx.files_port}/drip/{n}"}).status_code
        except httpx.HTTPError as error:
            return type(error).__name__

    with ThreadPoolExecutor(45) as pool:
        adds = [pool.submit(add, n) for n in range(45)]
        time.sleep(1.0)
        started = time.perf_counter()
        with ctx.client(DRIP_SECONDS + 30) as http:
            count = http.get("/api/images/count").status_code
        count_seconds = time.perf_counter() - started
        statuses = [future.result() for future in adds]
    tally = {status: statuses.count(status) for status in sorted(set(statuses), key=str)}
    return f"count {count} after {count_seconds:.1f} s; adds " + ", ".join(f"{n}x{s}" for s, n in tally.items())


def attack_nested_json(ctx):
    depth = 100000
    return _predict(ctx, '{"instances": ' + "[" * depth + "]" * depth + "}")


def attack_many_labels(ctx):
    with ctx.client() as http:
        return _answer(
            http.post(
                "/api/describe", data={"id": ctx.images["id"], "labels": ",".join(f"thing{n}" for n in range(10000))}
            )
        )


def attack_big_k(ctx):
    with ctx.client() as http:
        return _answer(http.get("/search", params={"q": "a red circle", "k": 10000, "candidates": 10000}))


def attack_host_header(ctx):
    with ctx.client() as http:
        return _answer(http.get("/api/images/count", headers={"Host": "attacker.example"}))


def attack_cross_origin_post(ctx):
    with ctx.client() as http:
        return _answer(
            http.post(
                "/api/images",
                files={"file": ("x.png", png((1, 2, 3)), "image/png")},
                headers={"Origin": "http://attacker.example"},
            )
        )


def attack_cross_origin_delete(ctx):
    with ctx.client() as http:
        response = http.delete(f"/api/images/{ctx.images['id']}", headers={"Origin": "http://attacker.example"})
        if response.status_code == 204:  # put it back for the attacks that follow
            http.post("/api/images", files={"file": ("red.png", png(), "image/png")})
        return _answer(response)


def attack_page_headers(ctx):
    with ctx.client() as http:
        headers = http.get("/").headers
    wanted = ("x-content-type-options", "content-security-policy", "x-frame-options")
    present = [name for name in wanted if name in headers]
    return "page headers: " + (", ".join(present) if present else "none of nosniff, CSP, frame options")


def attack_url_credentials(ctx):
    url = f"http://user:secret@127.0.0.1:{ctx.files_port}/creds.png"
    with ctx.client() as http:
        response = http.post("/api/images", data={"url": url})
        listed = http.get("/api/images", params={"limit": 1000}).text
    leaked = "secret" in response.text or "secret" in listed
    return f"{response.status_code}, password {'returned and stored' if leaked else 'not kept'}"


def attack_offset(ctx):
    with ctx.client() as http:
        return _answer(http.get("/api/images", params={"offset": "abc"}))


def attack_score_many(ctx):
    with ctx.client() as http:
        return _answer(
            http.post("/api/score", data={"id": ctx.images["id"], "text": [f"a red circle {n}" for n in range(100)]})
        )


def attack_same_image_adds(ctx):
    """8 concurrent adds of one new image, 5 rounds: how many answered 201 in each round."""
    rounds = []
    for n in range(5):
        data = png((n, 99, 7))
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _, data=data: _post_file(ctx, data), range(8)))
        rounds.append(statuses.count(201))
    return f"201s per round of 8 adds of one image: {rounds}"


def _post_file(ctx, data):
    with ctx.client() as http:
        return http.post("/api/images", files={"file": ("same.png", data, "image/png")}).status_code


def attack_add_delete_search_race(ctx):
    """Adds, deletes and searches of the same 3 images from 6 threads for 6 s, then every listed entry's file."""
    images = [png((250, 5 * n, 5)) for n in range(3)]
    stop_at = time.monotonic() + 6
    failures = []

    def worker(number):
        with ctx.client() as http:
            while time.monotonic() < stop_at:
                data = images[(number + int(time.monotonic() * 10)) % 3]
                try:
                    if number % 3 == 0:
                        response = http.post("/api/images", files={"file": ("r.png", data, "image/png")})
                    elif number % 3 == 1:
                        response = http.post("/api/images", files={"file": ("r.png", data, "image/png")})
                        if response.status_code < 500:
                            response = http.delete(f"/api/images/{response.json()['id']}")
                    else:
                        response = http.get("/search", params={"q": "a red circle", "k": 5, "candidates": 16})
                except httpx.HTTPError as error:
                    failures.append(type(error).__name__)
                    continue
                if response.status_code >= 500:
                    failures.append(response.status_code)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(worker, range(6)))
    with ctx.client() as http:
        listed = http.get("/api/images", params={"limit": 1000}).json()["images"]
        orphans = sum(http.get(f"/api/images/{entry['id']}/file").status_code != 200 for entry in listed)
    return f"{len(failures)} 5xx answers or broken connections, {orphans} listed entries without their file"


ATTACKS = {
    "generate_caption beam_size 5000 (REST)": attack_beam,
    "encode_image with 4,000 rows": attack_rows,
    "chunked 64 MB body to :predict (limit 16 MB)": attack_chunked_predict,
    "chunked 200 MB upload": attack_chunked_upload,
    f"GIF of {GIF_FRAMES} frames of {GIF_SIDE}x{GIF_SIDE}": attack_gif,
    "URL dripping 1 byte / 2 s": attack_drip_url,
    "45 dripping URLs, then GET count": attack_drip_flood,
    "JSON nested 100,000 deep to :predict": attack_nested_json,
    "/api/describe with 10,000 labels": attack_many_labels,
    "/search k=10000 candidates=10000": attack_big_k,
    "Host: attacker.example (DNS rebinding)": attack_host_header,
    "cross-origin POST /api/images": attack_cross_origin_post,
    "cross-origin DELETE /api/images/{id}": attack_cross_origin_delete,
    "GET / security headers": attack_page_headers,
    "URL with user:password@": attack_url_credentials,
    "GET /api/images?offset=abc": attack_offset,
    "/api/score with 100 texts": attack_score_many,
    "8 concurrent adds of one new image": attack_same_image_adds,
    "add/delete/search race on 3 images": attack_add_delete_search_race,
}


# The second round (issue 29): declared sizes, what an image costs, a budget per call, connections, JSON bodies,
# cross-site requests and framing.


def _field(number, payload):
    """One length-delimited protobuf field."""
    return bytes([number << 3 | 2]) + _varint(len(payload)) + payload


def _varint(value):
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def attack_declared_rows(ctx):
    """A 54-byte gRPC PredictRequest whose image_bytes tensor declares 20 million rows and carries no values, written
    by hand (so the script needs no TensorFlow)."""
    import grpc  # deferred: only this attack speaks gRPC

    shape = _field(2, b"\x08" + _varint(20_000_000))  # TensorShapeProto.dim { size }
    tensor = b"\x08\x07" + _field(2, shape)  # TensorProto: dtype DT_STRING (7), tensor_shape
    model_spec = _field(1, MODEL.encode()) + _field(3, b"embed_image")
    request = _field(1, model_spec) + _field(2, _field(1, b"image_bytes") + _field(2, tensor))
    with grpc.insecure_channel(f"127.0.0.1:{ctx.server.grpc_port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        try:
            predict(request, timeout=60)
            return "OK"
        except grpc.RpcError as error:
            return f"{error.code().name} {error.details()}"[:100]


def _gif_with_small_screen(side):
    """One side x side frame behind a 1x1 logical screen, version GIF88a (Pillow does not open it)."""
    buffer = io.BytesIO()
    Image.new("P", (side, side), 1).save(buffer, "GIF")
    gif = bytearray(buffer.getvalue())
    gif[3:6], gif[6:10] = b"88a", b"\1\0\1\0"
    return bytes(gif)


def _b64(data):
    return {"b64": base64.b64encode(data).decode()}


def attack_gif_frame_past_screen(ctx):
    return _predict(
        ctx, json.dumps({"signature_name": "embed_image", "instances": [_b64(_gif_with_small_screen(8000))]})
    )


@functools.cache
def _tall_gif():
    buffer = io.BytesIO()
    Image.new("P", (6000, 6600), 1).save(buffer, "GIF")  # 39.6 Mpx: under the 40 Mpx per-image limit
    return buffer.getvalue()


def attack_many_images_under_the_limit(ctx):
    return _predict(ctx, json.dumps({"signature_name": "embed_image", "instances": [_b64(_tall_gif())] * 8}))


def attack_half_sent_headers(ctx):
    """1,500 connections that send half their headers; GET /api/images/count while they are held and 12 s later;
    then what became of them."""
    held = []
    for _ in range(1500):
        sock = socket.create_connection(("127.0.0.1", ctx.server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        held.append(sock)
    time.sleep(1.0)
    with ctx.client(30) as http:
        during = http.get("/api/images/count").status_code
        time.sleep(12)
        after = http.get("/api/images/count").status_code
    outcomes = [_outcome(sock) for sock in held]
    for sock in held:
        sock.close()
    tally = ", ".join(f"{outcomes.count(kind)} {kind}" for kind in sorted(set(outcomes)))
    return f"count {during}, then {after} after 12 s; the 1,500: {tally}"


def _outcome(sock):
    """What the server did with a held connection: answered 503 or 408 and closed it, closed it, or kept it open."""
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
        state = "closed"
    except BlockingIOError:
        state = "open"
    except ConnectionError:
        state = "closed"
    return f"{data.split()[1].decode()} and {state}" if data.startswith(b"HTTP/1.1 ") else state


def attack_json_echo(ctx):
    body = b'{"instances":[' + b"0," * 3_999_999 + b'0],"inputs":1}'  # 8 MB, both keys
    with ctx.client(90) as http:
        response = http.post(f"/v1/models/{MODEL}:predict", content=body, headers={"Content-Type": "application/json"})
    return f"{response.status_code}, a {len(response.content):,}-byte answer"


def attack_cross_site_predict(ctx):
    body = json.dumps({"signature_name": "embed_image", "instances": [_b64(png())]})
    with ctx.client() as http:
        return _answer(
            http.post(
                f"/v1/models/{MODEL}:predict",
                content=body,
                headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
            )
        )


def attack_https_origin(ctx):
    with ctx.client() as http:
        return _answer(
            http.post(
                "/api/images",
                files={"file": ("x.png", png((1, 2, 9)), "image/png")},
                headers={"Origin": f"https://127.0.0.1:{ctx.server.port}"},
            )
        )


def attack_length_and_chunked(ctx):
    """Content-Length and Transfer-Encoding together, then a pipelined GET on the same connection."""
    with socket.create_connection(("127.0.0.1", ctx.server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/images/count HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n\r\n".encode()
        )
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    statuses = [line.split()[1].decode() for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    return " then ".join(statuses) + (
        "; connection kept" if not answer or b"connection: close" not in answer.lower() else "; connection closed"
    )


def attack_malformed_json(ctx):
    return _predict(ctx, "instances = [1, 2]")


SECOND_ROUND = {
    "gRPC: 54 bytes declaring 20,000,000 rows": attack_declared_rows,
    "GIF88a, 1x1 screen, one 8000x8000 frame": attack_gif_frame_past_screen,
    "8 GIFs of 6000x6600 in one embed_image call": attack_many_images_under_the_limit,
    "1,500 half-sent headers": attack_half_sent_headers,
    "8 MB of numbers with both instances and inputs": attack_json_echo,
    "text/plain :predict from a foreign Origin": attack_cross_site_predict,
    "Origin https://127.0.0.1:port on POST /api/images": attack_https_origin,
    "Content-Length + chunked, then a pipelined GET": attack_length_and_chunked,
    "malformed JSON (instances = [1, 2])": attack_malformed_json,
}
ATTACKS.update(SECOND_ROUND)


# Attacks on a second server, with a token (when the checkout knows --api_token_file) and no private URLs.
def attack_delete_without_token(ctx):
    with ctx.client() as http:
        return _answer(http.delete(f"/api/images/{ctx.images['id']}"))


def attack_ipv6_embedded_loopback(ctx):
    with ctx.client() as http:
        return _answer(
            http.post(
                "/api/images",
                data={"url": f"http://[::127.0.0.1]:{ctx.files_port}/red.png"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        )


GUARDED_ATTACKS = {
    "DELETE without the token (token configured)": attack_delete_without_token,
    "URL http://[::127.0.0.1]:port/ (private URLs off)": attack_ipv6_embedded_loopback,
}


def _supports(repo, flag):
    """Whether this checkout's server defines `flag` (the before checkout may not)."""
    with open(os.path.join(repo, "serving", "server.py")) as source:
        return f'"{flag}"' in source.read()


def _seed_index(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        added = http.post(
            "/api/images", files={"file": ("red.png", png(), "image/png")}, headers={"Authorization": f"Bearer {TOKEN}"}
        )  # for the guarded server; others ignore it
        if added.status_code not in (200, 201):
            raise SystemExit(f"cannot add an image to the server's index: {added.text}")
        return added.json()["id"]


def run_attacks(attacks, server, files_port, images, cap_mb, token=None):
    """{attack: (answer, seconds, memory growth MB)}; the server is restarted after a kill or a timeout."""
    results = {}
    if not attacks:
        return results
    server.start()
    images["id"] = _seed_index(server)
    for name, attack in attacks.items():
        if not server.alive():
            server.start()
            images["id"] = _seed_index(server)
        ctx = Context(server, files_port, images)
        started = time.perf_counter()
        with MemoryWatch(server, cap_mb) as watch:
            try:
                answer = attack(ctx)
            except httpx.TimeoutException:
                answer = "client timed out"
            except httpx.HTTPError as error:
                answer = f"{type(error).__name__}: {error}"[:90]
        seconds = time.perf_counter() - started
        if watch.killed:
            answer = f"killed at +{cap_mb} MB"
        elif answer == "client timed out":
            server.kill()  # it may still be working on the request
        results[name] = (answer, seconds, watch.growth)
        print(f"  {name}: {answer} ({seconds:.1f} s, +{watch.growth:.0f} MB)", file=sys.stderr, flush=True)
    server.stop()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model_base_path",
        required=True,
        help="Export base path of a model with generate_caption (a tiny one is enough).",
    )
    parser.add_argument(
        "--repo",
        action="append",
        default=[],
        help="NAME=PATH of a checkout whose server to attack (repeatable; default: this one).",
    )
    parser.add_argument(
        "--memory_cap_mb", type=float, default=3000, help="Kill the server when one attack grows it by more than this."
    )
    parser.add_argument("--only", default="", help="Comma-separated substrings: run only the attacks matching one.")
    args = parser.parse_args()
    repos = [tuple(item.split("=", 1)) for item in args.repo] or [("this", REPO)]
    model_base_path = os.path.abspath(args.model_base_path)
    wanted = [word for word in args.only.split(",") if word]
    select = lambda table: {k: v for k, v in table.items() if not wanted or any(w in k for w in wanted)}  # noqa
    images = {"/creds.png": png((10, 200, 10)), "/red.png": png()}
    columns = {}
    with (
        file_server({"/creds.png": images["/creds.png"], "/red.png": images["/red.png"]}) as files_port,
        tempfile.TemporaryDirectory() as scratch,
    ):
        for name, path in repos:
            path = os.path.abspath(path)
            print(f"{name}: attacking the server of {path}", file=sys.stderr, flush=True)
            work = os.path.join(scratch, name)
            os.makedirs(work)
            open_server = Server(path, model_base_path, work, ["--allow_private_urls"])
            results = run_attacks(select(ATTACKS), open_server, files_port, images, args.memory_cap_mb)
            token_file = os.path.join(work, "token")
            with open(token_file, "w") as f:
                f.write(TOKEN + "\n")
            guarded_flags = [f"--api_token_file={token_file}"] if _supports(path, "api_token_file") else []
            os.makedirs(os.path.join(work, "guarded"))
            guarded = Server(path, model_base_path, os.path.join(work, "guarded"), guarded_flags)
            results.update(run_attacks(select(GUARDED_ATTACKS), guarded, files_port, images, args.memory_cap_mb))
            columns[name] = results
    print_table(columns)


def print_table(columns):
    names = list(columns)
    print("| attack | " + " | ".join(f"{name}: answer | {name}: time | {name}: memory" for name in names) + " |")
    print("|---|" + "---|---:|---:|" * len(names))
    for attack in next(iter(columns.values())):
        cells = []
        for name in names:
            answer, seconds, growth = columns[name][attack]
            cells += [answer.replace("|", "/"), f"{seconds:.1f} s", f"+{growth:.0f} MB"]
        print(f"| {attack} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
