import os

import pytest

from captioning.util import atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.weights.h5"
    atomic.write_text(str(path), "old")
    with pytest.raises(RuntimeError), atomic.replaced_on_success(str(path)) as temporary:
        assert temporary.endswith(".weights.h5") and os.path.dirname(temporary) == str(tmp_path)
        with open(temporary, "w") as f:
            f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["model.weights.h5"]


def test_a_finished_write_replaces_the_file_and_creates_its_folder(tmp_path):
    path = tmp_path / "new" / "ranking.json"
    atomic.write_text(str(path), "{}")
    atomic.write_text(str(path), '{"alpha": 0.5}')
    assert path.read_text() == '{"alpha": 0.5}' and os.listdir(path.parent) == ["ranking.json"]
