"""The exported SavedModel is what stock TF Serving loads: versioned layout, `serve` tag, docs/architecture.md's
signatures, core TensorFlow ops only and nothing XLA-compiled."""

import os

import pytest
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from captioning.export import layout
from captioning.export.signatures import SIGNATURES

# Ops that exist only to run XLA clusters: TF Serving disables XLA, so none may appear.
XLA_OPS = {"XlaLaunch", "_XlaCompile", "_XlaRun", "_XlaMerge", "XlaCallModule"}


@pytest.fixture(scope="module")
def saved_model(tiny_export_dir):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(tiny_export_dir, "1", layout.SAVED_MODEL_FILE), "rb") as f:
        proto.ParseFromString(f.read())
    assert len(proto.meta_graphs) == 1
    return proto.meta_graphs[0]


def all_nodes(graph_def):
    yield from graph_def.node
    for function in graph_def.library.function:
        yield from function.node_def


def test_layout_tag_and_extras(tiny_export_dir, saved_model):
    version_dir = os.path.join(tiny_export_dir, "1")
    assert {layout.SAVED_MODEL_FILE, "variables", layout.EXTRA_FILES_DIR} <= set(os.listdir(version_dir))
    assert list(saved_model.meta_info_def.tags) == ["serve"]
    extras = set(os.listdir(os.path.join(version_dir, layout.EXTRA_FILES_DIR)))
    assert {layout.CONFIG_FILE, layout.VOCABULARY_FILE, layout.METADATA_FILE} <= extras


def test_signatures_match_the_design(saved_model):
    signatures = saved_model.signature_def
    default = signatures["serving_default"]
    assert set(default.inputs) == {"image_bytes", "text"}
    assert set(default.outputs) == set(SIGNATURES["serving_default"].output_names())  # the tiny model has the head
    matrix = signatures["score_matrix"]
    assert set(matrix.inputs) == {"image_bytes", "text"}
    assert set(matrix.outputs) == {"log_likelihood", "mean_log_prob", "pmi", "contrastive"}
    assert all(len(output.tensor_shape.dim) == 2 for output in matrix.outputs.values())
    for name, inputs in (("embed_image", {"image_bytes"}), ("embed_text", {"text"})):
        assert set(signatures[name].inputs) == inputs and set(signatures[name].outputs) == {"embedding"}


def test_only_core_tensorflow_ops_and_no_xla(saved_model):
    ops = {node.op for node in all_nodes(saved_model.graph_def)}
    functions = {f.signature.name for f in saved_model.graph_def.library.function}
    # A node may call a function of the library by name; every other op must be registered by TensorFlow itself
    # (this process loads no custom op libraries, and neither does stock TF Serving).
    unknown = sorted(op for op in ops - functions if op_def_registry.get(op) is None)
    assert not unknown, f"ops that are not core TensorFlow ops: {unknown}"
    assert not ops & XLA_OPS
    compiled = [f.signature.name for f in saved_model.graph_def.library.function if f.attr["_XlaMustCompile"].b]
    compiled += [
        node.name
        for node in all_nodes(saved_model.graph_def)
        if node.attr["_XlaMustCompile"].b or node.attr["_XlaCompile"].b
    ]
    assert not compiled, f"XLA-compiled (jit_compile) functions or calls: {compiled}"


def test_cross_attention_is_a_distribution_over_the_grid_for_each_scored_word(tiny_export_dir, sample_images):
    import numpy as np

    from captioning.inference.local import SavedModelScorer
    from captioning.model.config import ModelConfig

    scorer = SavedModelScorer(tiny_export_dir)
    with open(sample_images[0][0], "rb") as f:
        image = f.read()
    texts = ["a red circle", "a large blue square on the left"]
    result = scorer.run("cross_attention", {"image_bytes": [image] * 2, "text": texts})
    config = ModelConfig.load(scorer.extra_file(layout.CONFIG_FILE))
    cells = (config.image_size // 8) ** 2  # the small CNN halves the side three times
    assert result["attention"].shape == (2, config.num_layers, 8, cells)  # the longest text: 7 words + [end]
    np.testing.assert_allclose(result["attention"].sum(axis=-1), 1.0, rtol=1e-5)
    assert [t.decode() for t in result["token"][0]] == ["a", "red", "circle", "[end]", "", "", "", ""]
    # The per-token log-probabilities add up to serving_default's log_likelihood.
    expected = scorer.score([image] * 2, texts)["log_likelihood"]
    np.testing.assert_allclose(result["log_prob"].sum(axis=1), expected, rtol=1e-5, atol=1e-4)


def test_contrastive_scores_are_the_dot_products_of_the_embedding_signatures(tiny_export_dir, sample_images):
    import numpy as np

    from captioning.inference.local import SavedModelScorer

    scorer = SavedModelScorer(tiny_export_dir)
    images = []
    for path in sample_images[0]:
        with open(path, "rb") as f:
            images.append(f.read())
    texts = ["a red circle", "a large blue square on the left", "a gray star and a green cross"]
    image_embeddings = scorer.run("embed_image", {"image_bytes": images})["embedding"]
    text_embeddings = scorer.run("embed_text", {"text": texts})["embedding"]
    np.testing.assert_allclose(np.linalg.norm(image_embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_embeddings, axis=1), 1.0, rtol=1e-5)
    pairwise = image_embeddings @ text_embeddings.T
    np.testing.assert_allclose(scorer.score(images, texts)["contrastive"], np.diag(pairwise), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scorer.score_matrix(images, texts)["contrastive"], pairwise, rtol=1e-5, atol=1e-6)
    features = scorer.run("encode_image", {"image_bytes": images})["image_features"]
    from_features = scorer.run("score_features", {"image_features": features, "text": texts})["contrastive"]
    np.testing.assert_allclose(from_features, np.diag(pairwise), rtol=1e-5, atol=1e-6)
