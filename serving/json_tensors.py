"""TF Serving's REST JSON tensor format (util/json_tensor.cc) <-> numpy.

Requests come in the row format ({"instances": [...]}) or the columnar one
({"inputs": ...}); binary strings are {"b64": "..."}.  Answers use the same
format as the request: {"predictions": [...]} or {"outputs": ...}, with
outputs whose name ends in "_bytes" base64-encoded and floats written the way
TF Serving writes them.
"""

import base64
import binascii
import enum
import json
import math

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2

from captioning.inference import tensors
from serving.status import ServingError, invalid_argument

_B64 = "b64"
_MAX_RANK = 254  # TensorFlow's largest number of dimensions
_BYTES_SUFFIX = "_bytes"


class Format(enum.Enum):
    ROW = "instances"
    COLUMNAR = "inputs"


def parse_body(body):
    """The request's JSON object, or TF Serving's parse error (rapidjson's message and byte offset)."""
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as error:
        raise _parse_error("Invalid encoding in string.", error.start) from None
    if not text.strip(_JSON_SPACE):
        raise _parse_error("The document is empty.", len(body))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise _parse_error(_rapidjson_message(error), len(text[: error.pos].encode("utf-8"))) from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: the document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


_JSON_SPACE = " \t\n\r"
# Python's json messages -> rapidjson's (error/en.h), which TF Serving's answers carry.
_RAPIDJSON_MESSAGES = (
    ("Expecting value", "Invalid value."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Expecting property name", "Missing a name for object member."),
    ("Expecting ':'", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\u", "Incorrect hex digit after \\u escape in string."),
    ("Invalid control character", "Invalid encoding in string."),
)


def _rapidjson_message(error):
    if error.msg.startswith("Expecting ',' delimiter"):  # rapidjson says which bracket it expected
        return (
            "Missing a comma or '}' after an object member."
            if _innermost_bracket(error.doc, error.pos) == "{"
            else "Missing a comma or ']' after an array element."
        )
    for python, rapidjson in _RAPIDJSON_MESSAGES:
        if error.msg.startswith(python):
            return rapidjson
    return "Unspecific syntax error."


def _innermost_bracket(text, end):
    """The innermost '[' or '{' still open at `end`, skipping strings."""
    stack, in_string, escaped = [], False, False
    for char in text[:end]:
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _parse_error(message, offset):
    return invalid_argument(f"JSON Parse error: {message} at offset: {offset}")


def signature_name(doc):
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {_dump(doc)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def request_inputs(doc, input_dtypes, check_sizes=None):
    """(Format, {alias: array}) from a predict request.

    `input_dtypes` maps the signature's input aliases to DataType enums. `check_sizes({alias: TensorSize})`, when
    given, sees the sizes the inputs declare (their lists' lengths) before any array is built.
    """
    has_rows, has_columns = Format.ROW.value in doc, Format.COLUMNAR.value in doc
    if has_rows and has_columns:
        raise _format_error(doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ")
    if check_sizes is not None:
        check_sizes(_declared_sizes(doc, input_dtypes))
    if has_rows:
        return Format.ROW, _from_instances(doc, input_dtypes)
    if has_columns:
        return Format.COLUMNAR, _from_inputs(doc[Format.COLUMNAR.value], input_dtypes)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def response_json(outputs, request_format):
    """The JSON answer for `outputs` ({alias: array}) in the request's format."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format is Format.COLUMNAR:
        values = {name: _tensor_json(name, outputs[name]) for name in names}
        body = values[names[0]] if len(names) == 1 else _object(values)
        return '{"outputs": ' + body + "}"
    batch = None
    for name in names:
        if outputs[name].ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch is not None and outputs[name].shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {outputs[name].shape[0]} expecting: {batch}"
            )
        batch = outputs[name].shape[0]
    rows = []
    for row in range(batch):
        values = {name: _tensor_json(name, outputs[name][row]) for name in names}
        rows.append(values[names[0]] if len(names) == 1 else _object(values))
    return '{"predictions": [' + ", ".join(rows) + "]}"


def _from_instances(doc, input_dtypes):
    instances = doc[Format.ROW.value]
    if not isinstance(instances, list):
        raise _format_error(doc, "Excepting 'instances' to be an list/array")
    if not instances:
        raise _format_error(doc, "No values in 'instances' array")
    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as "
            "multiple input tensors required as per tensorinfo_map"
        )
    named = _is_named_object(instances[0])
    names = sorted(input_dtypes)
    columns = {name: _Column(input_dtypes[name]) for name in names}
    for index, item in enumerate(instances):
        if named:
            if not _is_named_object(item):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            for key, value in item.items():
                try:
                    if key not in columns:
                        raise invalid_argument(f"JSON object: does not have named input: {key}")
                    columns[key].add(value)
                except ServingError as error:
                    raise _element_error(error, f"{index} key: {key}") from None
            if set(item) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_dump(item)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_named_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                columns[names[0]].add(item)
            except ServingError as error:
                raise _element_error(error, str(index)) from None
    return {name: column.array() for name, column in columns.items() if column.items}


def _element_error(error, where):
    status = error.code.name
    return ServingError(
        error.code, f"Failed to process element: {where} of 'instances' list. Error: {status}: {error.message}"
    )


def _from_inputs(value, input_dtypes):
    if not _is_named_object(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as "
                "multiple input tensors required as per tensorinfo_map"
            )
        ((name, dtype),) = input_dtypes.items()
        return {name: _to_array(value, dtype)}
    arrays = {}
    for name in sorted(input_dtypes):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = _to_array(value[name], input_dtypes[name])
    return arrays


class _Column:
    """One input of a row-format request: items of equal shape, stacked."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.items = []

    def add(self, value):
        item = _to_array(value, self.dtype)
        if self.items and item.size != self.items[0].size:
            raise invalid_argument(f"Expecting tensor size: {self.items[0].size} but got: {item.size}")
        if self.items and item.shape != self.items[0].shape:
            raise invalid_argument(f"Expecting shape {_shape(self.items[0].shape)} but got: {_shape(item.shape)}")
        self.items.append(item)

    def array(self):
        return np.stack(self.items)


def _declared_sizes(doc, input_dtypes):
    """{alias: TensorSize} the inputs declare, read along each list's first element (what building them checks
    every other element against), building nothing; inputs whose layout is malformed are left to the parse."""

    def size(shape, dtype):
        elements = math.prod(shape)
        itemsize = 0 if dtype == types_pb2.DT_STRING else np.dtype(_NUMPY.get(dtype, np.float64)).itemsize
        return tensors.TensorSize(tuple(shape), elements, elements * itemsize)  # strings: the body cap bounds them

    instances, columns = doc.get(Format.ROW.value), doc.get(Format.COLUMNAR.value)
    if isinstance(instances, list) and instances:
        first = instances[0]
        if _is_named_object(first):
            return {
                name: size([len(instances)] + _probe_shape(first[name]), dtype)
                for name, dtype in input_dtypes.items()
                if name in first
            }
        if len(input_dtypes) == 1:
            ((name, dtype),) = input_dtypes.items()
            return {name: size([len(instances)] + _probe_shape(first), dtype)}
    if _is_named_object(columns):
        return {
            name: size(_probe_shape(columns[name]), dtype) for name, dtype in input_dtypes.items() if name in columns
        }
    if columns is not None and len(input_dtypes) == 1:
        ((name, dtype),) = input_dtypes.items()
        return {name: size(_probe_shape(columns), dtype)}
    return {}


def _probe_shape(value):
    """A nested list's shape read along its first elements (at most _MAX_RANK + 1 levels)."""
    shape = []
    while isinstance(value, list) and len(shape) <= _MAX_RANK:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _to_array(value, dtype):
    """A dense tensor from nested JSON lists, checking every level like TF Serving."""
    shape = _probe_shape(value)
    if len(shape) > _MAX_RANK:  # also bounds _fill's recursion
        raise invalid_argument(f"JSON list nested {len(shape)} deep: a tensor has at most {_MAX_RANK} dimensions")
    flat = []
    _fill(value, 0, shape, dtype, flat)
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        # Narrow integers wrap, like TF Serving's int_val -> int8/int16/uint8 copy.
        array = np.array(flat, dtype=_STAGING.get(dtype, _NUMPY[dtype])).astype(_NUMPY[dtype])
    return array.reshape(shape)


def _fill(value, level, shape, dtype, out):
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid_argument(
                f"JSON Value: {_dump(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {len(shape)}"
            )
        out.append(_scalar(value, dtype))
        return
    if level >= len(shape):
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


# Integer ranges as rapidjson's IsInt/IsInt64/IsUint/IsUint64 check them.
_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**31), 2**31),
    types_pb2.DT_INT16: (-(2**31), 2**31),
    types_pb2.DT_INT32: (-(2**31), 2**31),
    types_pb2.DT_UINT8: (-(2**31), 2**31),
    types_pb2.DT_INT64: (-(2**63), 2**63),
    types_pb2.DT_UINT32: (0, 2**32),
    types_pb2.DT_UINT64: (0, 2**64),
}
# Largest integer each float type holds exactly.
_FLOAT_EXACT_INT = {types_pb2.DT_FLOAT: 2**24 - 1, types_pb2.DT_DOUBLE: 2**53 - 1}
_STAGING = {types_pb2.DT_INT8: np.int32, types_pb2.DT_INT16: np.int32, types_pb2.DT_UINT8: np.int32}
_NUMPY = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
}


def _scalar(value, dtype):
    if isinstance(value, dict):
        if dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        return _b64_decode(value)
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in _FLOAT_EXACT_INT:
        if not is_number:
            raise _type_error(value, dtype)
        if not _is_lossless(value, dtype):
            raise invalid_argument(
                f"Cannot convert JSON value: {_dump(value)} to {tensors.dtype_name(dtype)} without loss of precision."
            )
        return value
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (is_number and isinstance(value, int) and low <= value < high):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        grpc.StatusCode.UNIMPLEMENTED, f"Conversion of JSON Value: {_dump(value)} to type: {tensors.dtype_name(dtype)}"
    )


def _is_lossless(value, dtype):
    if isinstance(value, int):
        return abs(value) <= _FLOAT_EXACT_INT[dtype]
    if not math.isfinite(value) or dtype == types_pb2.DT_DOUBLE:
        return True
    return abs(value) <= float(np.finfo(np.float32).max)


def _b64_decode(value):
    if not (len(value) == 1 and isinstance(value.get(_B64), str)):
        raise invalid_argument(f"JSON Value: {_dump(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value[_B64], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _is_named_object(value):
    """A JSON object naming tensors, as opposed to a {"b64": ...} value."""
    return isinstance(value, dict) and not (len(value) == 1 and isinstance(value.get(_B64), str))


def _type_error(value, dtype):
    return invalid_argument(
        f"JSON Value: {_dump(value)} Type: {_json_type(value)} is not of expected type: {tensors.dtype_name(dtype)}"
    )


def _format_error(doc, message):
    return invalid_argument(f"JSON Value: {_dump(doc)} {message}")


def _json_type(value):
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


_EXCERPT_CHARS = 200  # of a request echoed in an error message


def _dump(value):
    """The JSON of `value`, cut to a short excerpt: written piece by piece, so a huge document is never written
    whole just to be quoted."""
    text = ""
    for piece in json.JSONEncoder().iterencode(value):
        text += piece
        if len(text) > _EXCERPT_CHARS:
            return text[:_EXCERPT_CHARS] + "..."
    return text


def _shape(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _object(values):
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in values.items()) + "}"


def _tensor_json(name, array):
    as_bytes = name.endswith(_BYTES_SUFFIX)
    if array.ndim == 0:
        return _value_json(array.item(), array.dtype, as_bytes)
    if array.ndim == 1:
        items = (_value_json(value, array.dtype, as_bytes) for value in array.tolist())
    else:
        items = (_tensor_json(name, row) for row in array)
    return "[" + ", ".join(items) + "]"


def _value_json(value, dtype, as_bytes):
    if dtype.kind == "f":
        return _decimal(value, np.float64 if dtype == np.float64 else np.float32)
    if dtype.kind == "b":
        return "true" if value else "false"
    if dtype.kind == "O":
        if as_bytes:
            return json.dumps({_B64: base64.b64encode(value).decode("ascii")})
        return json.dumps(value.decode("utf-8", "replace"))
    return str(int(value))


def _decimal(value, float_type):
    """A float as TF Serving writes it: shortest %g form that round-trips."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    if float_type(float(text)) != float_type(value):
        text = f"{value:.{17 if float_type is np.float64 else 9}g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text
