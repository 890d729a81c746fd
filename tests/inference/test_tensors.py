"""TensorProto <-> numpy conversion agrees with TensorFlow's own."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from captioning.inference import tensors


@pytest.mark.parametrize("value", [
    np.array([1.5, -2.25], np.float32),
    np.array([[1, 2], [3, 4]], np.int32),
    np.array([2**40], np.int64),
    np.array([True, False]),
    np.array([0.5, 1.0], np.float16),
    np.array(3.0, np.float64),
    np.array([255, 0], np.uint8),
])
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
    np.testing.assert_array_equal(tensors.from_proto(tf.make_tensor_proto([[1.0, 2.0]])),
                                  [[1.0, 2.0]])
    assert list(tensors.from_proto(tf.make_tensor_proto([b"a", b"b"]))) == [b"a", b"b"]


def test_short_typed_field_is_padded_with_last_value_like_tensorflow():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=3)
    proto.float_val.append(7.0)
    np.testing.assert_array_equal(tensors.from_proto(proto), tf.make_ndarray(proto))


def test_empty_string_list_is_a_string_tensor():
    assert tensors.to_proto(tensors.string_array([])).dtype == types_pb2.DT_STRING


@pytest.mark.parametrize("mutate", [
    lambda p: setattr(p, "tensor_content", b"123"),  # not a whole number of floats
    lambda p: p.tensor_shape.dim.add(size=-1),
    lambda p: setattr(p, "dtype", types_pb2.DT_RESOURCE),
])
def test_malformed_protos_raise_value_error(mutate):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    mutate(proto)
    with pytest.raises(ValueError):
        tensors.from_proto(proto)
