"""A model server that speaks TensorFlow Serving's gRPC and REST protocols.

    python -m serving.server --model_base_path=export/ [--port=8500] [--rest_api_port=8501]
    python -m serving.server --model_base_path=export/ --index_dir=index/   # + search, /docs and the page at /

For one machine, development and tests; production uses TF Serving itself
with the same SavedModel export.  Ports open only once every model has a
loaded version; SIGTERM/SIGINT stop accepting requests, finish the ones in
flight and exit 0.  The REST port is one FastAPI app (serving/web): TF
Serving's REST API, and with --index_dir the search API and page.
"""

import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field

from captioning.util import cli

cli.quiet_start()  # before the imports below load TensorFlow

import grpc  # noqa: E402
from absl import flags, logging  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc  # noqa: E402

from captioning.search.images import ImageLimits  # noqa: E402
from captioning.search.retrieval import POOR_MATCH_MEAN_LOG_PROB  # noqa: E402
from captioning.util.errors import CaptioningError  # noqa: E402
from captioning.util.memory import keep_freed_memory  # noqa: E402
from serving.batching import BatchingOptions  # noqa: E402
from serving.grpc_services import ModelService, PredictionService  # noqa: E402
from serving.limits import CLIENT_PAIRS, CLIENT_ROWS, RequestLimits, SearchLimits  # noqa: E402
from serving.model_registry import ModelRegistry, read_model_config_file, single_model_config  # noqa: E402
from serving.predictor import Predictor  # noqa: E402
from serving.rest_api import RestApi  # noqa: E402
from serving.web.app import create_app  # noqa: E402
from serving.web.connections import ConnectionLimits, reserve_file_descriptors  # noqa: E402
from serving.web.guards import LOOPBACK_NAMES, MAX_JSON_BYTES, WebGuards, is_loopback  # noqa: E402
from serving.web.http_server import HttpServer  # noqa: E402

# TF Serving lifts gRPC's 4 MB default to the protobuf maximum; so do we.
MAX_MESSAGE_BYTES = 2**31 - 1
GRPC_QUEUED_CALLS_PER_THREAD = 4  # gRPC calls running or waiting for a thread, per --grpc_max_threads
GRPC_STREAMS_PER_CONNECTION = 100  # calls at once on one gRPC connection
_SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService")


@dataclass
class ServerOptions:
    model_configs: list  # tensorflow_serving ModelConfig protos
    host: str = "127.0.0.1"
    port: int = 8500  # 0 picks a free port
    rest_api_port: int | None = 8501  # None turns REST off; 0 picks a free port
    batching: BatchingOptions | None = field(default_factory=BatchingOptions)  # None: off
    file_system_poll_wait_seconds: float = 2.0
    grpc_max_threads: int = 64
    # Larger gRPC requests get RESOURCE_EXHAUSTED, larger REST bodies 413.
    max_request_bytes: int = MAX_MESSAGE_BYTES
    max_json_bytes: int = MAX_JSON_BYTES  # a REST body to TF Serving's routes; larger ones get 413
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)  # REST connections; gRPC's idle time
    limits: RequestLimits = field(default_factory=RequestLimits)  # what one Predict call may cost
    shutdown_grace_seconds: float = 30.0
    search: "SearchOptions | None" = None  # None: no search API or page
    allowed_hosts: tuple = ()  # Host header names the REST port answers besides loopback ones; "*": any
    api_token: str | None = None  # needed to add, delete and re-index when set


@dataclass
class SearchOptions:
    index_dir: str
    model_name: str = "captioner"  # the served model whose embeddings the index holds
    qdrant_url: str | None = None  # a Qdrant server instead of embedded Qdrant in index_dir
    allow_private_urls: bool = False  # let URL adds reach loopback/private/link-local hosts
    limits: SearchLimits = field(default_factory=SearchLimits)
    poor_match_mean_log_prob: float = POOR_MATCH_MEAN_LOG_PROB  # the page's "nothing matches well" below this


class ModelServer:
    """Loads the models, then serves them over gRPC and (optionally) REST."""

    def __init__(self, options):
        self.options = options
        self.predictor = Predictor(options.batching, options.limits)
        self.registry = ModelRegistry(
            options.model_configs, on_load=self.predictor.prepare, on_unload=self.predictor.release
        )
        self.grpc_port = None
        self.rest_port = None
        self._health = health.HealthServicer()
        self._grpc_server = None
        self._rest_server = None
        self.search = None
        self._stop_requested = threading.Event()
        self._stopped = False

    def start(self):
        """Loads every model, then opens the ports; False if stopped while loading."""
        options = self.options
        if not self.registry.wait_until_available(options.file_system_poll_wait_seconds, self._stop_requested):
            return False
        self.registry.start_polling(options.file_system_poll_wait_seconds)
        if options.search and options.rest_api_port is not None:
            # Opens the index and warms the search signatures up: ready before any port opens.
            self.search = _search_service(options.search, self.registry, self.predictor)
        connections = options.connections
        reserve_file_descriptors(connections.max_connections)
        self._grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
            # Calls past this wait for no thread: RESOURCE_EXHAUSTED at once.
            maximum_concurrent_rpcs=GRPC_QUEUED_CALLS_PER_THREAD * options.grpc_max_threads,
            options=[
                ("grpc.max_receive_message_length", options.max_request_bytes),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Without this a second server could silently share the port.
                ("grpc.so_reuseport", 0),
                # The same deadlines as the REST port's: a connection's handshake, and its idle time.
                ("grpc.server_handshake_timeout_ms", int(connections.header_timeout_seconds * 1000)),
                ("grpc.max_connection_idle_ms", int(connections.idle_timeout_seconds * 1000)),
                ("grpc.max_concurrent_streams", GRPC_STREAMS_PER_CONNECTION),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.registry, self.predictor), self._grpc_server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.registry), self._grpc_server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc_server)
        # Every model is loaded by now, so health says SERVING from the first connection.
        for service in ("",) + _SERVICES:
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        try:
            self.grpc_port = self._grpc_server.add_insecure_port(f"{options.host}:{options.port}")
        except RuntimeError:  # grpc's "Failed to bind"
            self.grpc_port = None
        if not self.grpc_port:
            raise OSError(
                f"cannot serve gRPC on {options.host}:{options.port}: the port is in use (or the address is "
                "not this machine's); stop the other server or give another --port"
            )
        self._grpc_server.start()
        if options.rest_api_port is not None:
            app = create_app(RestApi(self.registry, self.predictor), self.search, _web_guards(options))
            self._rest_server = HttpServer(options.host, options.rest_api_port, app, connections)
            try:
                self._rest_server.start(options.shutdown_grace_seconds)
            except OSError as error:
                raise OSError(
                    f"cannot serve REST on {options.host}:{options.rest_api_port} "
                    f"({error.strerror or error}); stop the other server or give another --rest_api_port"
                ) from None
            self.rest_port = self._rest_server.port
        logging.info(
            "Serving %s: gRPC on %s:%d, REST %s",
            ", ".join(self.registry.model_names),
            options.host,
            self.grpc_port,
            f"on {options.host}:{self.rest_port}" if self.rest_port else "off",
        )
        return True

    def request_stop(self):
        """Asks `wait()` to return; safe to call from a signal handler."""
        self._stop_requested.set()

    def wait(self):
        self._stop_requested.wait()

    def stop(self):
        """Stops accepting requests, finishes those in flight, unloads models."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        grace = self.options.shutdown_grace_seconds
        self._health.enter_graceful_shutdown()
        grpc_done = self._grpc_server.stop(grace) if self._grpc_server else None
        if self._rest_server:
            self._rest_server.stop(grace)
        if grpc_done:
            grpc_done.wait()
        if self.search:
            self.search.close()
        self.registry.stop()
        self.registry.unload_all()
        logging.info("Server stopped")


def _web_guards(options):
    host = options.host
    allowed = LOOPBACK_NAMES if is_loopback(host) or host in ("0.0.0.0", "::", "") else LOOPBACK_NAMES + (host,)
    search_limits = options.search.limits if options.search else SearchLimits()
    return WebGuards(
        allowed_hosts=tuple(allowed) + tuple(options.allowed_hosts),
        api_token=options.api_token,
        max_request_bytes=options.max_request_bytes,
        max_upload_bytes=search_limits.max_upload_bytes,
        max_json_bytes=options.max_json_bytes,
    )


def _search_service(options, registry, predictor):
    from captioning.search.fetch import FetchOptions
    from captioning.search.opening import check_reachable, without_version_warning
    from serving.web.search_service import SearchService

    limits = options.limits
    fetch = FetchOptions(
        allow_private=options.allow_private_urls,
        max_bytes=limits.max_url_bytes,
        timeout_seconds=limits.url_timeout_seconds,
        image_limits=predictor.limits.image,
    )
    with without_version_warning():  # check_reachable says it better
        service = SearchService(
            registry,
            predictor,
            options.model_name,
            options.index_dir,
            options.qdrant_url,
            fetch,
            limits=limits,
            image_limits=predictor.limits.image,
            poor_match_mean_log_prob=options.poor_match_mean_log_prob,
        )
    try:
        check_reachable(service.index, options.qdrant_url)
    except Exception:
        service.close()
        raise
    return service


FLAGS = flags.FLAGS
TOKEN_VARIABLE = "CAPTIONING_API_TOKEN"
flags.DEFINE_string("model_base_path", None, "Directory holding numbered SavedModel versions.")
flags.DEFINE_string("model_name", "captioner", "Name clients use for the model.")
flags.DEFINE_integer("port", 8500, "gRPC port.")
flags.DEFINE_integer("rest_api_port", 8501, "REST port; 0 turns the REST API off.")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind.")
flags.DEFINE_string(
    "model_config_file",
    None,
    "TF Serving ModelServerConfig text proto (model_config_list) to serve several "
    "models; replaces --model_base_path/--model_name.",
)
flags.DEFINE_boolean("enable_batching", True, "Merge concurrent requests into batched model calls.")
flags.DEFINE_integer("max_batch_size", 64, "Most rows in one batched model call.")
flags.DEFINE_integer("batch_timeout_micros", 5000, "Longest a request waits for a batch to fill.")
flags.DEFINE_float("file_system_poll_wait_seconds", 2.0, "Interval between checks for new versions.")
flags.DEFINE_integer("grpc_max_threads", 64, "Threads handling gRPC requests.")
flags.DEFINE_integer("max_request_bytes", MAX_MESSAGE_BYTES, "Largest gRPC request or REST body accepted.")
flags.DEFINE_integer("max_json_bytes", MAX_JSON_BYTES, "Largest JSON body to TF Serving's REST routes (/v1/...).")
flags.DEFINE_integer(
    "max_connections",
    ConnectionLimits.max_connections,
    "Most open REST connections: past it a new one closes the one waiting longest for headers, or "
    "gets 503 when every one is busy.",
)
flags.DEFINE_float(
    "header_timeout_seconds",
    ConnectionLimits.header_timeout_seconds,
    "Longest a connection may take to send a request's headers (REST) or its handshake (gRPC).",
)
flags.DEFINE_float(
    "idle_timeout_seconds",
    ConnectionLimits.idle_timeout_seconds,
    "Longest a connection may stay open idle between requests (REST keep-alive, gRPC).",
)
flags.DEFINE_string(
    "index_dir",
    None,
    "Image index folder: serves search, /docs and the search page on the REST "
    "port (python -m captioning.search builds one).",
)
flags.DEFINE_string("qdrant_url", None, "With --index_dir: keep the vectors in this Qdrant server or cluster.")
flags.DEFINE_boolean("allow_private_urls", False, "Let images be added from loopback, private and link-local URLs.")
flags.DEFINE_float(
    "poor_match_mean_log_prob",
    POOR_MATCH_MEAN_LOG_PROB,
    "The search page says nothing matches well when the best result's log-likelihood per token is below this "
    "(measure a model's own with scripts/poor_match.py).",
)
# What one request may cost (docs/serving.md, "Limits and security").
flags.DEFINE_integer(
    "max_rows_per_call", RequestLimits.max_rows_per_call, "Most rows of any input of one signature call."
)
flags.DEFINE_integer(
    "max_matrix_pairs", RequestLimits.max_matrix_pairs, "Most images x texts of one score_matrix call."
)
flags.DEFINE_integer("max_beam_size", RequestLimits.max_beam_size, "Largest generate_caption beam_size.")
flags.DEFINE_integer("max_caption_length", RequestLimits.max_caption_length, "Largest generate_caption max_length.")
flags.DEFINE_integer(
    "max_caption_hypotheses",
    RequestLimits.max_caption_hypotheses,
    "Most images x beam_size of one generate_caption call.",
)
flags.DEFINE_integer(
    "max_image_pixels",
    ImageLimits.max_pixels,
    "Most pixels of one image as its decoder allocates them, summed over an animation's frames (each "
    "GIF frame at its own size).",
)
flags.DEFINE_integer("max_image_frames", ImageLimits.max_frames, "Most frames of one animated image.")
flags.DEFINE_integer(
    "max_request_pixels", RequestLimits.max_request_pixels, "Most pixels of all the images of one call together."
)
flags.DEFINE_integer(
    "max_request_frames", RequestLimits.max_request_frames, "Most frames of all the images of one call together."
)
flags.DEFINE_integer(
    "max_input_elements",
    RequestLimits.max_input_elements,
    "Most values of all the inputs of one call, checked from the declared shapes before parsing.",
)
flags.DEFINE_integer(
    "max_input_bytes",
    RequestLimits.max_input_bytes,
    "Most bytes of all the inputs of one call (strings by their length), checked before parsing.",
)
flags.DEFINE_integer("max_search_results", SearchLimits.max_results, "Largest k of /search.")
flags.DEFINE_integer(
    "max_search_candidates",
    SearchLimits.max_candidates,
    "Largest candidates (K) of /search: images reranked by log-likelihood.",
)
flags.DEFINE_integer("max_labels", SearchLimits.max_labels, "Most labels of one /api/describe.")
flags.DEFINE_integer("max_texts", SearchLimits.max_texts, "Most texts of one /api/score.")
flags.DEFINE_integer("max_upload_bytes", SearchLimits.max_upload_bytes, "Largest uploaded image.")
flags.DEFINE_integer("max_url_bytes", SearchLimits.max_url_bytes, "Largest image fetched from a URL.")
flags.DEFINE_float(
    "url_timeout_seconds",
    SearchLimits.url_timeout_seconds,
    "Deadline of one URL fetch, from name look-up to last byte, redirects included.",
)
flags.DEFINE_integer(
    "max_concurrent_fetches", SearchLimits.max_concurrent_fetches, "URL fetches running at once; more are answered 503."
)
# Who may reach the REST port and change the collection.
flags.DEFINE_list(
    "allowed_hosts",
    [],
    "Host names the REST port answers besides localhost, 127.0.0.1 and ::1 (and the --host address); * answers any.",
)
flags.DEFINE_string(
    "api_token_file",
    None,
    "File holding the token that adding, deleting and re-indexing need "
    f"(Authorization: Bearer); or set {TOKEN_VARIABLE}. Required with a "
    "--host other than loopback.",
)
flags.DEFINE_boolean(
    "allow_unauthenticated_writes",
    False,
    "With a --host other than loopback, let anyone who reaches the port add, delete and re-index.",
)
flags.register_validator(
    "max_rows_per_call",
    lambda value: value >= CLIENT_ROWS,
    message=f"--max_rows_per_call must be at least {CLIENT_ROWS}: the project's own clients "
    "send that many texts in one score_matrix call",
)
flags.register_validator(
    "max_matrix_pairs",
    lambda value: value >= CLIENT_PAIRS,
    message=f"--max_matrix_pairs must be at least {CLIENT_PAIRS}: the project's own clients "
    "send that many image-text pairs in one score_matrix call",
)
for _name in (
    "max_beam_size",
    "max_caption_length",
    "max_caption_hypotheses",
    "max_image_pixels",
    "max_image_frames",
    "max_request_pixels",
    "max_request_frames",
    "max_input_elements",
    "max_input_bytes",
    "max_json_bytes",
    "max_connections",
    "header_timeout_seconds",
    "idle_timeout_seconds",
    "max_search_results",
    "max_search_candidates",
    "max_labels",
    "max_texts",
    "max_upload_bytes",
    "max_url_bytes",
    "url_timeout_seconds",
    "max_concurrent_fetches",
):
    flags.register_validator(_name, lambda value: value > 0, message=f"--{_name} must be positive")
cli.define_flag_validators(
    (
        "model_base_path",
        os.path.isdir,
        "must name an existing folder of numbered SavedModel versions (python train.py writes checkpoints/export)",
    ),
    ("model_config_file", os.path.isfile, "must name an existing file"),
    ("index_dir", lambda path: not os.path.isfile(path), "is a file: give a folder (created if missing)"),
    ("port", lambda port: 0 <= port <= 65535, "must be a port number (0 picks a free one)"),
    ("rest_api_port", lambda port: 0 <= port <= 65535, "must be a port number (0 turns REST off)"),
    ("max_batch_size", lambda value: value >= 1, "must be at least 1"),
    ("batch_timeout_micros", lambda value: value >= 0, "must be 0 or more"),
    ("file_system_poll_wait_seconds", lambda value: value > 0, "must be more than 0"),
    ("grpc_max_threads", lambda value: value >= 1, "must be at least 1"),
    ("max_request_bytes", lambda value: 1 <= value <= MAX_MESSAGE_BYTES, f"must be in [1, {MAX_MESSAGE_BYTES}]"),
)


def options_from_flags():
    if bool(FLAGS.model_base_path) == bool(FLAGS.model_config_file):
        raise cli.UsageError("give exactly one of --model_base_path and --model_config_file")
    if FLAGS.index_dir and not FLAGS.rest_api_port:
        raise cli.UsageError("--index_dir serves search on the REST port: give a --rest_api_port other than 0")
    if FLAGS.model_config_file:
        try:
            configs = read_model_config_file(FLAGS.model_config_file)
        except text_format.ParseError as error:
            raise cli.UsageError(
                f"--model_config_file {FLAGS.model_config_file} is not a valid model config text "
                f"proto ({error}); see serving/models.config"
            ) from None
    else:
        configs = [single_model_config(FLAGS.model_name, FLAGS.model_base_path)]
    batching = None
    if FLAGS.enable_batching:
        batching = BatchingOptions(max_batch_size=FLAGS.max_batch_size, batch_timeout_micros=FLAGS.batch_timeout_micros)
    return ServerOptions(
        model_configs=configs,
        limits=RequestLimits(
            FLAGS.max_rows_per_call,
            FLAGS.max_matrix_pairs,
            FLAGS.max_beam_size,
            FLAGS.max_caption_length,
            ImageLimits(FLAGS.max_image_pixels, FLAGS.max_image_frames),
            max_caption_hypotheses=FLAGS.max_caption_hypotheses,
            max_input_elements=FLAGS.max_input_elements,
            max_input_bytes=FLAGS.max_input_bytes,
            max_request_pixels=FLAGS.max_request_pixels,
            max_request_frames=FLAGS.max_request_frames,
        ),
        allowed_hosts=tuple(FLAGS.allowed_hosts),
        api_token=_api_token(),
        host=FLAGS.host,
        port=FLAGS.port,
        rest_api_port=FLAGS.rest_api_port or None,
        batching=batching,
        file_system_poll_wait_seconds=FLAGS.file_system_poll_wait_seconds,
        grpc_max_threads=FLAGS.grpc_max_threads,
        max_request_bytes=FLAGS.max_request_bytes,
        max_json_bytes=FLAGS.max_json_bytes,
        connections=ConnectionLimits(FLAGS.max_connections, FLAGS.header_timeout_seconds, FLAGS.idle_timeout_seconds),
        search=SearchOptions(
            FLAGS.index_dir,
            configs[0].name,
            FLAGS.qdrant_url,
            FLAGS.allow_private_urls,
            SearchLimits(
                FLAGS.max_search_results,
                FLAGS.max_search_candidates,
                FLAGS.max_labels,
                FLAGS.max_texts,
                FLAGS.max_upload_bytes,
                FLAGS.max_url_bytes,
                FLAGS.url_timeout_seconds,
                FLAGS.max_concurrent_fetches,
            ),
            FLAGS.poor_match_mean_log_prob,
        )
        if FLAGS.index_dir
        else None,
    )


def _api_token():
    """The write token from --api_token_file or the environment; UsageError when the host needs one and has none."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip() or None
    if FLAGS.api_token_file:
        try:
            with open(FLAGS.api_token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as error:
            raise cli.UsageError(f"--api_token_file {FLAGS.api_token_file}: {error.strerror}") from None
        if not token:
            raise cli.UsageError(f"--api_token_file {FLAGS.api_token_file} is empty: write the token in it")
    if FLAGS.index_dir and not token and not is_loopback(FLAGS.host) and not FLAGS.allow_unauthenticated_writes:
        raise cli.UsageError(
            f"--host {FLAGS.host} lets other machines reach the search API: give --api_token_file (or set "
            f"{TOKEN_VARIABLE}) so that only token holders add, delete and re-index, or pass "
            "--allow_unauthenticated_writes to let anyone"
        )
    return token


# What a bad start raises (a missing base path, a port in use, an index another process holds, an unreachable
# Qdrant, a model without the contrastive head for search): told in one line, not a traceback.
_START_UP_FAILURES = (OSError, CaptioningError)


def main(argv):
    del argv
    keep_freed_memory()  # tensor buffers are reused across requests instead of page-faulted in each time
    try:
        server = ModelServer(options_from_flags())  # a base path in --model_config_file may be missing
    except _START_UP_FAILURES as error:
        return cli.fail(error)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.request_stop())
    try:
        try:
            if server.start():
                server.wait()
        except _START_UP_FAILURES as error:
            return cli.fail(error)
    finally:
        server.stop()
    return 0


def run() -> None:
    """The `captioning-serve` command (also `python -m serving.server`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
