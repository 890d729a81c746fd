"""TensorProto <-> numpy conversion agrees with TensorFlow's own."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from captioning.inference import tensors


@pytest.mark.parametrize(
    "value",
    [
        np.array([1.5, -2.25], np.float32),
        np.array([[1, 2], [3, 4]], np.int32),
        np.array([2**40], np.int64),
        np.array([True, False]),
        np.array([0.5, 1.0], np.float16),
        np.array(3.0, np.float64),
        np.array([255, 0], np.uint8),
    ],
)
@pytest.mark.parametrize("use_tensor_content", [False, True])
def test_numeric_round_trip_matches_tensorflow(value, use_tensor_content):
    proto = tensors.to_proto(value, use_tensor_content=use_tensor_content)
    parsed = tensors.from_proto(proto)
    assert parsed.dtype == value.dtype and parsed.shape == value.shape
    np.testing.assert_array_equal(parsed, value)
    np.testing.assert_array_equal(tf.make_ndarray(proto), value)


def test_strings_keep_trailing_nul_bytes_and_encode_str():
    proto = tensors.to_proto([b"png\x00\x00", "caf\u00e9"])
    assert proto.dtype == types_pb2.DT_STRING
    assert list(tensors.from_proto(proto)) == [b"png\x00\x00", "caf\u00e9".encode()]


def test_parses_tensorflow_made_protos():
    np.testing.assert_array_equal(tensors.from_proto(tf.make_tensor_proto([[1.0, 2.0]])), [[1.0, 2.0]])
    assert list(tensors.from_proto(tf.make_tensor_proto([b"a", b"b"]))) == [b"a", b"b"]


@pytest.mark.parametrize(
    "dtype, field",
    [
        (types_pb2.DT_FLOAT, "float_val"),
        (types_pb2.DT_STRING, "string_val"),
        (types_pb2.DT_INT8, "int_val"),
        (types_pb2.DT_HALF, "half_val"),
    ],
)
def test_values_that_do_not_fill_the_shape_are_malformed_not_padded(dtype, field):
    # Tensor::FromProto would pad with the last value: a few bytes declaring billions of elements.
    proto = tensor_pb2.TensorProto(dtype=dtype)
    proto.tensor_shape.dim.add(size=3)
    getattr(proto, field).append(b"x" if dtype == types_pb2.DT_STRING else 7)
    for parse in (tensors.proto_size, tensors.from_proto):
        with pytest.raises(ValueError, match=f"{field} holds 1 values; shape \\[3\\] needs 3"):
            parse(proto)


def test_a_huge_declared_shape_is_measured_without_allocating():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    proto.tensor_shape.dim.add(size=2**62)
    proto.tensor_shape.dim.add(size=2**62)  # the product overflows int64; measured as a Python int
    with pytest.raises(ValueError, match="string_val holds 0 values"):
        tensors.proto_size(proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 8)
    proto.tensor_shape.dim.add(size=200_000_000)
    with pytest.raises(ValueError, match=r"tensor_content holds 8 bytes; shape \[200000000\] of float needs 8000"):
        tensors.proto_size(proto)


def test_proto_size_counts_rows_values_and_bytes():
    assert tensors.proto_size(tensors.to_proto([b"abc", b"de"])) == tensors.TensorSize((2,), 2, 5)
    size = tensors.proto_size(tensors.to_proto(np.zeros((4, 3), np.float32), use_tensor_content=True))
    assert (size.rows, size.elements, size.bytes) == (4, 12, 48)
    assert tensors.proto_size(tensors.to_proto(np.float64(2.0))).rows == 1


def test_empty_string_list_is_a_string_tensor():
    assert tensors.to_proto(tensors.string_array([])).dtype == types_pb2.DT_STRING


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: setattr(p, "tensor_content", b"123"),  # not a whole number of floats
        lambda p: p.tensor_shape.dim.add(size=-1),
        lambda p: setattr(p, "dtype", types_pb2.DT_RESOURCE),
    ],
)
def test_malformed_protos_raise_value_error(mutate):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    mutate(proto)
    with pytest.raises(ValueError):
        tensors.from_proto(proto)
