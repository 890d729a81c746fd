"""Predict with TF Serving's validation, shared by the gRPC and REST front ends.

Checks run in the order of TF Serving's predict_util.cc so a request with
several problems gets the same first error, with the same message.
"""

import threading

import grpc

from captioning.inference import tensors
from serving.batching import Batcher
from serving.limits import RequestLimits
from serving.status import ServingError, invalid_argument

DEFAULT_SIGNATURE = "serving_default"


class Predictor:
    """Validates Predict requests and runs them, batched where enabled.

    Register `prepare` / `release` as the model registry's load / unload hooks
    so every servable gets its batchers before it serves and loses them after.
    """

    def __init__(self, batching=None, limits=RequestLimits()):
        self._batching = batching  # BatchingOptions, or None when batching is off
        self.limits = limits
        self._batchers = {}  # (servable, signature name) -> Batcher
        self._lock = threading.Lock()

    def prepare(self, servable):
        if self._batching is None:
            return
        batchers = {
            (servable, name): Batcher(signature.run, self._batching)
            for name, signature in servable.signatures.items()
            if name in self._batching.signatures
        }
        with self._lock:
            self._batchers.update(batchers)

    def release(self, servable):
        with self._lock:
            keys = [key for key in self._batchers if key[0] is servable]
            batchers = [self._batchers.pop(key) for key in keys]
        for batcher in batchers:
            batcher.close()

    def signature(self, servable, signature_name):
        """The signature a request names (empty means serving_default)."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in servable.signatures:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        return servable.signatures[name]

    def predict(self, servable, signature_name, inputs, output_filter=(), decode=None, measure=None):
        """Runs one request; returns (signature name, {output alias: array}).

        `inputs` maps aliases to raw values that `decode(value)` turns into numpy
        arrays (raising ValueError if malformed); by default they already are.
        `measure(value)` gives a raw value's TensorSize without building it, so the
        limits are checked before anything is allocated from a declared shape.
        """
        signature = self.signature(servable, signature_name)
        _check_aliases(signature, inputs)
        if measure is not None:
            self.limits.check_sizes(_each_input(signature, inputs, measure))
        arrays = _each_input(signature, inputs, decode or (lambda value: value))
        wanted = _output_aliases(signature, output_filter)
        _check_inputs(signature, arrays)
        self.limits.check(signature.name, arrays)
        batcher = self._batchers.get((servable, signature.name))
        outputs = batcher.submit(arrays) if batcher else signature.run(arrays)
        return signature.name, {alias: outputs[alias] for alias in wanted}


def _check_aliases(signature, inputs):
    expected, sent = set(signature.inputs), set(inputs)
    if len(sent) != len(expected):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{_join(sent)}}}) != len({{{_join(expected)}}}). "
            f"Sent extra: {{{_join(sent - expected)}}}. "
            f"Missing but required: {{{_join(expected - sent)}}}."
        )
    for alias in signature.inputs:
        if alias not in inputs:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {signature.feed_names[alias]}) "
                f"not found in request and no default value provided. Inputs expected to "
                f"be in the request {{{_join(sent)}}}, or default input alias set: "
            )


def _each_input(signature, inputs, function):
    """{alias: function(value)} for the signature's inputs; a ValueError is TF Serving's parsing error (its
    message, which names only the alias)."""
    results = {}
    for alias in signature.inputs:
        try:
            results[alias] = function(inputs[alias])
        except ValueError:
            raise invalid_argument(f"tensor parsing error: {alias}") from None
    return results


def _output_aliases(signature, output_filter):
    seen = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected "
                f"to be in the set {{{_join(signature.outputs)}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen or list(signature.outputs)


def _check_inputs(signature, arrays):
    """The checks TF's function call frame makes, with its messages."""
    for index, (alias, spec) in enumerate(signature.inputs.items()):
        array = arrays[alias]
        expected = spec.dtype.as_datatype_enum
        given = tensors.dtype_of(array)
        if given != expected:
            raise invalid_argument(
                f"Expects arg[{index}] to be {tensors.dtype_name(expected)} but {tensors.dtype_name(given)} is provided"
            )
        if not spec.shape.is_compatible_with(array.shape):
            raise invalid_argument(
                f"Expects arg[{index}] ({alias}) to have shape {_shape(spec.shape)} but "
                f"{_shape(array.shape)} is provided"
            )


def _shape(shape):
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def _join(names):
    return ",".join(sorted(names))
