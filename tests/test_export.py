"""The exported SavedModel is what stock TF Serving loads: versioned layout, `serve` tag, DESIGN.md's
signatures, core TensorFlow ops only and nothing XLA-compiled."""

import os

import pytest
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from captioning.export import EXTRA_FILES_DIR

# Ops that exist only to run XLA clusters: TF Serving disables XLA, so none may appear.
XLA_OPS = {"XlaLaunch", "_XlaCompile", "_XlaRun", "_XlaMerge", "XlaCallModule"}


@pytest.fixture(scope="module")
def saved_model(tiny_export_dir):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(tiny_export_dir, "1", "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    assert len(proto.meta_graphs) == 1
    return proto.meta_graphs[0]


def all_nodes(graph_def):
    yield from graph_def.node
    for function in graph_def.library.function:
        yield from function.node_def


def test_layout_tag_and_extras(tiny_export_dir, saved_model):
    version_dir = os.path.join(tiny_export_dir, "1")
    assert {"saved_model.pb", "variables", "assets.extra"} <= set(os.listdir(version_dir))
    assert list(saved_model.meta_info_def.tags) == ["serve"]
    extras = set(os.listdir(os.path.join(version_dir, EXTRA_FILES_DIR)))
    assert {"config.json", "vocabulary.txt", "training_metadata.json"} <= extras


def test_signatures_match_the_design(saved_model):
    signatures = saved_model.signature_def
    default = signatures["serving_default"]
    assert set(default.inputs) == {"image_bytes", "text"}
    assert {"log_likelihood", "num_tokens", "mean_log_prob", "perplexity", "prior_log_likelihood", "pmi",
            "unknown_tokens"} <= set(default.outputs)
    matrix = signatures["score_matrix"]
    assert set(matrix.inputs) == {"image_bytes", "text"}
    assert set(matrix.outputs) == {"log_likelihood", "mean_log_prob", "pmi"}
    assert all(len(output.tensor_shape.dim) == 2 for output in matrix.outputs.values())


def test_only_core_tensorflow_ops_and_no_xla(saved_model):
    ops = {node.op for node in all_nodes(saved_model.graph_def)}
    functions = {f.signature.name for f in saved_model.graph_def.library.function}
    # A node may call a function of the library by name; every other op must be registered by TensorFlow itself
    # (this process loads no custom op libraries, and neither does stock TF Serving).
    unknown = sorted(op for op in ops - functions if op_def_registry.get(op) is None)
    assert not unknown, f"ops that are not core TensorFlow ops: {unknown}"
    assert not ops & XLA_OPS
    compiled = [f.signature.name for f in saved_model.graph_def.library.function if f.attr["_XlaMustCompile"].b]
    compiled += [node.name for node in all_nodes(saved_model.graph_def)
                 if node.attr["_XlaMustCompile"].b or node.attr["_XlaCompile"].b]
    assert not compiled, f"XLA-compiled (jit_compile) functions or calls: {compiled}"
