"""Which model versions are loaded, following TF Serving's model lifecycle.

Each model has a base path holding numbered version directories.  Polling
finds them, the model's version policy (default: latest 1) picks the versions
to serve, new ones are loaded, and versions no longer wanted are unloaded only
once a wanted version is available, so the model never goes dark mid-swap.
"""

import os
import threading
from collections import Counter

import grpc
from absl import logging
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from captioning.export.layout import SAVED_MODEL_FILE
from captioning.util.errors import InvalidInput
from serving.servable import Servable
from serving.status import invalid_argument, not_found

State = get_model_status_pb2.ModelVersionStatus.State

# TF Serving gives up on a version after the same number of failed loads.
MAX_LOAD_ATTEMPTS = 5
_PLATFORMS = ("", "tensorflow")


def single_model_config(name, base_path):
    return model_server_config_pb2.ModelConfig(name=name, base_path=base_path)


def read_model_config_file(path):
    """Parses TF Serving's --model_config_file (a ModelServerConfig text proto)."""
    with open(path) as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    if config.WhichOneof("config") != "model_config_list":
        raise InvalidInput(f"{path}: only model_config_list is supported")
    configs = list(config.model_config_list.config)
    for model in configs:
        if model.model_platform not in _PLATFORMS:
            raise InvalidInput(f"{path}: model {model.name!r} has unsupported platform {model.model_platform!r}")
    return configs


class _Model:
    def __init__(self, config):
        self.config = config
        self.servables = {}  # version -> Servable, the AVAILABLE versions
        self.states = {}  # version -> (State, error message); kept after unload
        self.failed_loads = Counter()


class ModelRegistry:
    """Loads, serves and unloads model versions; thread-safe.

    `on_load(servable)` runs before a version starts being served and
    `on_unload(servable)` after it stops, so users can keep per-servable state.
    """

    def __init__(self, configs, on_load=lambda servable: None, on_unload=lambda servable: None):
        self._models = {config.name: _Model(config) for config in configs}
        self._on_load = on_load
        self._on_unload = on_unload
        self._lock = threading.Lock()  # guards servables/states for readers
        self._poll_lock = threading.Lock()  # one poll at a time
        self._stopped = threading.Event()
        self._poller = None
        for config in configs:
            if not os.path.isdir(config.base_path):
                raise FileNotFoundError(f"Could not find base path {config.base_path} for servable {config.name}")

    @property
    def model_names(self):
        return list(self._models)

    def wait_until_available(self, poll_interval, cancelled):
        """Polls until every model serves a version; False if `cancelled` is set first."""
        while True:
            self.poll()
            waiting = [name for name, model in self._models.items() if not model.servables]
            if not waiting:
                return True
            logging.info("Waiting for a loadable version of %s", ", ".join(waiting))
            if cancelled.wait(poll_interval):
                return False

    def start_polling(self, interval):
        def loop():
            while not self._stopped.wait(interval):
                self.poll()

        self._poller = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._poller.start()

    def stop(self):
        self._stopped.set()
        if self._poller:
            self._poller.join()

    def unload_all(self):
        with self._poll_lock:
            for model in self._models.values():
                for version in sorted(model.servables):
                    self._unload(model, version)

    def poll(self):
        with self._poll_lock:
            for model in self._models.values():
                self._update(model)

    def get(self, name, version=None, label=None):
        """The servable a ModelSpec asks for, or TF Serving's error."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        if label is not None:
            version = self._version_for_label(name, label)
        model = self._models.get(name)
        with self._lock:
            servables = model.servables if model else {}
            if version is None:
                if servables:
                    return servables[max(servables)]
                raise not_found(f"Servable not found for request: Latest({name})")
            if version in servables:
                return servables[version]
        raise not_found(f"Servable not found for request: Specific({name}, {version})")

    def status(self, name, version=None, label=None):
        """ModelVersionStatus protos, newest first, like GetModelStatus."""
        if label is not None:
            version = self._version_for_label(name, label)
        model = self._models.get(name)
        with self._lock:
            states = dict(model.states) if model else {}
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return [_version_status(v, *states[v]) for v in sorted(states, reverse=True)]

    def _version_for_label(self, name, label):
        model = self._models.get(name)
        labels = model.config.version_labels if model else {}
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def _update(self, model):
        try:
            on_disk = _version_dirs(model.config.base_path)
        except OSError as error:
            logging.warning("Cannot list %s: %s", model.config.base_path, error)
            return
        wanted = _wanted_versions(model.config.model_version_policy, sorted(on_disk))
        for version in sorted(wanted - set(model.servables)):
            self._load(model, version, on_disk[version])
        if wanted & set(model.servables):
            for version in sorted(set(model.servables) - wanted):
                self._unload(model, version)

    def _load(self, model, version, path):
        name = model.config.name
        if model.failed_loads[version] >= MAX_LOAD_ATTEMPTS:
            return
        self._set_state(model, version, State.LOADING)
        try:
            servable = Servable(name, version, path)
        except Exception as error:  # a broken version must not take the server down
            model.failed_loads[version] += 1
            logging.error("Loading servable: {name: %s version: %d} failed: %s", name, version, error)
            self._set_state(model, version, State.END, str(error))
            return
        self._on_load(servable)
        with self._lock:
            model.servables[version] = servable
            model.states[version] = (State.AVAILABLE, "")
        logging.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload(self, model, version):
        with self._lock:
            servable = model.servables.pop(version)
            model.states[version] = (State.END, "")
        self._on_unload(servable)
        logging.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    def _set_state(self, model, version, state, error=""):
        with self._lock:
            model.states[version] = (state, error)


def _version_dirs(base_path):
    """{version: path} for numbered subdirectories holding a saved model."""
    versions = {}
    for entry in os.scandir(base_path):
        if entry.name.isdigit() and entry.is_dir() and _has_saved_model(entry.path):
            versions[int(entry.name)] = entry.path
    return versions


def _has_saved_model(path):
    return any(os.path.exists(os.path.join(path, f)) for f in (SAVED_MODEL_FILE, SAVED_MODEL_FILE + "txt"))


def _wanted_versions(policy, versions):
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    count = policy.latest.num_versions if choice == "latest" else 1
    return set(versions[-max(count, 1) :])


def _version_status(version, state, error):
    status = get_model_status_pb2.ModelVersionStatus(version=version, state=state)
    status.status.error_code = (grpc.StatusCode.UNKNOWN if error else grpc.StatusCode.OK).value[0]
    status.status.error_message = error
    return status
