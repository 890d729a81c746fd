"""The registry of signatures (captioning/export/signatures.py) is what the export writes, what the test double
serves and what docs/architecture.md's table says: names, inputs, outputs, dtypes and ranks, exactly."""

import os
import pathlib
import sys

import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from captioning.export.signatures import SIGNATURES, for_model, markdown_table
from tests.fake_model import FAKED, export_fake_model

ROOT = pathlib.Path(__file__).resolve().parents[2]


def exported(version_dir) -> dict:
    """{signature: ({input: (dtype, rank)}, {output: (dtype, rank)})} of a SavedModel's SignatureDefs."""
    meta_graph = loader_impl.parse_saved_model(str(version_dir)).meta_graphs[0]

    def tensors(infos):
        return {
            name: (tf.as_dtype(info.dtype).name, None if info.tensor_shape.unknown_rank else len(info.tensor_shape.dim))
            for name, info in infos.items()
        }

    return {
        name: (tensors(signature.inputs), tensors(signature.outputs))
        for name, signature in meta_graph.signature_def.items()
        if name != "__saved_model_init_op"
    }


def registered(names, head: bool) -> dict:
    """The same description, from the registry, of the signatures `names` of a model with or without the head."""

    def tensors(specs):
        return {spec.name: (spec.dtype, len(spec.shape)) for spec in specs if head or not spec.head_only}

    return {name: (tensors(SIGNATURES[name].inputs), tensors(SIGNATURES[name].outputs)) for name in names}


def test_the_export_writes_the_registry_exactly(tiny_export_dir):
    written = exported(os.path.join(tiny_export_dir, "1"))
    assert written == registered([signature.name for signature in for_model(head=True)], head=True)


def test_a_model_without_the_head_exports_the_rest_without_its_outputs(tiny_model):
    import dataclasses

    from captioning.export.saved_model import ScoringModule
    from captioning.model.captioner import Captioner

    model, vocabulary = tiny_model
    headless = Captioner(dataclasses.replace(model.config, contrastive_dim=0))
    functions = ScoringModule(headless, vocabulary).signatures()
    assert set(functions) == {signature.name for signature in for_model(head=False)}
    assert not {"embed_image", "embed_text"} & set(functions)
    for name, function in functions.items():
        assert set(function.structured_outputs) == set(SIGNATURES[name].output_names(head=False)), name


@pytest.mark.parametrize("head", [True, False])
def test_the_test_double_serves_registry_signatures_exactly(tmp_path, head):
    written = exported(export_fake_model(str(tmp_path), 1, contrastive=head))
    names = [signature.name for signature in for_model(head) if signature.name in FAKED]
    assert written == registered(names, head)


def test_the_docs_show_the_registry_table():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import signature_table
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    for page in signature_table.PAGES:
        assert signature_table.table_in(page.read_text(encoding="utf-8")) == markdown_table(), (
            f"{page.name}'s signature table differs from the registry: run scripts/signature_table.py"
        )


def test_the_layout_and_the_registry_load_without_tensorflow():
    import subprocess

    code = (
        "import sys; import captioning.export.layout, captioning.export.signatures; print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"
