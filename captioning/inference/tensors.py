"""TensorProto <-> numpy conversion with TensorFlow's own rules.

Shared by the server and the client, so neither needs tf.make_tensor_proto /
tf.make_ndarray.  Values come either from `tensor_content` (raw little-endian
bytes) or from the typed repeated field, and must be exactly as many as the
shape holds: Tensor::FromProto pads a short field with its last value, which
lets a few bytes declare billions of elements, so here that is malformed.
`proto_size` measures a tensor from its shape and its payload's own length
without allocating anything, so a server checks its limits before parsing.
"""

import math
from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2


@dataclass(frozen=True)
class _DType:
    name: str  # TensorFlow's DataTypeString, used in error messages
    numpy: np.dtype
    field: str  # the TensorProto repeated field holding typed values


_DTYPES = {
    types_pb2.DT_FLOAT: _DType("float", np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: _DType("double", np.dtype(np.float64), "double_val"),
    types_pb2.DT_HALF: _DType("half", np.dtype(np.float16), "half_val"),
    types_pb2.DT_INT8: _DType("int8", np.dtype(np.int8), "int_val"),
    types_pb2.DT_INT16: _DType("int16", np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT32: _DType("int32", np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT64: _DType("int64", np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT8: _DType("uint8", np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: _DType("uint16", np.dtype(np.uint16), "int_val"),
    types_pb2.DT_UINT32: _DType("uint32", np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: _DType("uint64", np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: _DType("bool", np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_STRING: _DType("string", np.dtype(object), "string_val"),
}
_DTYPE_BY_NUMPY = {d.numpy: enum for enum, d in _DTYPES.items() if enum != types_pb2.DT_STRING}


def dtype_name(dtype):
    """TensorFlow's name for a DataType enum value ("float", "string", ...)."""
    known = _DTYPES.get(dtype)
    return known.name if known else types_pb2.DataType.Name(dtype)


def dtype_of(array):
    """The DataType enum value for a numpy array; strings map to DT_STRING."""
    if array.dtype.kind in "OSU":
        return types_pb2.DT_STRING
    try:
        return _DTYPE_BY_NUMPY[array.dtype]
    except KeyError:
        raise ValueError(f"unsupported numpy dtype {array.dtype}") from None


def as_array(value):
    """np.asarray that keeps bytes/str as an object array of bytes.

    numpy's fixed-width bytes dtype drops trailing NUL bytes, which would
    corrupt encoded images, so strings never go through it.
    """
    if not isinstance(value, np.ndarray):
        value = np.asarray(value, dtype=object if _holds_strings(value) else None)
    return string_array(value) if value.dtype.kind in "OSU" else value


def string_array(values):
    """An object array of bytes (str encoded as UTF-8) shaped like `values`."""
    values = np.asarray(values, dtype=object)
    flat = [v.encode("utf-8") if isinstance(v, str) else v for v in values.ravel().tolist()]
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(values.shape)


def _holds_strings(value):
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    return isinstance(value, (bytes, str))


def to_proto(array, use_tensor_content=False):
    """Builds a TensorProto from a numpy array (or anything `as_array` takes).

    By default values go into the typed field, like TF Serving's responses
    (Tensor::AsProtoField); `use_tensor_content` packs numeric data as raw
    bytes, which is much faster for large tensors.
    """
    array = as_array(array)
    dtype = dtype_of(array)
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape]
        ),
    )
    spec = _DTYPES[dtype]
    if dtype == types_pb2.DT_STRING:
        proto.string_val.extend(array.ravel().tolist())
    elif use_tensor_content:
        proto.tensor_content = np.ascontiguousarray(array, dtype=spec.numpy.newbyteorder("<")).tobytes()
    elif dtype == types_pb2.DT_HALF:
        proto.half_val.extend(array.astype(np.float16).view(np.uint16).ravel().tolist())
    else:
        getattr(proto, spec.field).extend(array.ravel().tolist())
    return proto


@dataclass(frozen=True)
class TensorSize:
    """What a tensor costs: its shape, element count and bytes (a string tensor's: the strings' lengths)."""

    shape: tuple
    elements: int
    bytes: int

    @property
    def rows(self):
        return self.shape[0] if self.shape else 1

    @classmethod
    def of_array(cls, array):
        nbytes = sum(len(value) for value in array.reshape(-1)) if array.dtype == object else array.nbytes
        return cls(tuple(array.shape), int(array.size), nbytes)


def proto_size(proto):
    """The TensorSize of a TensorProto from its shape and its values' own length, allocating nothing (no product
    of dimensions is trusted before the values are counted); ValueError when the values do not match the shape."""
    spec = _spec(proto)
    shape = _shape(proto.tensor_shape)
    count = math.prod(shape)  # a Python int: no overflow, however large the declared dimensions
    if proto.tensor_content:
        if proto.dtype == types_pb2.DT_STRING:
            raise ValueError("string tensors must use string_val")
        needed = count * spec.numpy.itemsize
        if len(proto.tensor_content) != needed:
            raise ValueError(
                f"tensor_content holds {len(proto.tensor_content)} bytes; shape {shape} of {spec.name} needs {needed}"
            )
        return TensorSize(tuple(shape), count, needed)
    values = getattr(proto, spec.field)
    if len(values) != count:
        raise ValueError(f"{spec.field} holds {len(values)} values; shape {shape} needs {count}")
    nbytes = sum(map(len, values)) if proto.dtype == types_pb2.DT_STRING else count * spec.numpy.itemsize
    return TensorSize(tuple(shape), count, nbytes)


def from_proto(proto):
    """Parses a TensorProto into a numpy array; ValueError if it is malformed or its values do not match its
    shape. Allocates no more than the values' own size."""
    spec = _spec(proto)
    size = proto_size(proto)
    if proto.tensor_content:
        data = np.frombuffer(proto.tensor_content, dtype=spec.numpy.newbyteorder("<"))
        return data.astype(spec.numpy, copy=False).reshape(size.shape)
    values = getattr(proto, spec.field)
    if proto.dtype == types_pb2.DT_STRING:
        flat = np.empty(size.elements, dtype=object)
        flat[:] = list(values)
    elif proto.dtype == types_pb2.DT_HALF:
        flat = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        flat = np.array(values, dtype=spec.numpy)
    return flat.reshape(size.shape)


def _spec(proto):
    spec = _DTYPES.get(proto.dtype)
    if spec is None:
        raise ValueError(f"unsupported dtype {dtype_name(proto.dtype)}")
    return spec


def _shape(shape_proto):
    if shape_proto.unknown_rank:
        raise ValueError("tensor shape has unknown rank")
    dims = [d.size for d in shape_proto.dim]
    if any(d < 0 for d in dims):
        raise ValueError(f"tensor shape {dims} has a negative dimension")
    return dims
