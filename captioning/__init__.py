"""Image-text similarity from a captioning model.

    from captioning import Scorer
    scores = Scorer("checkpoints/export")(images=["a.png"], texts=["a red star", "a blue circle"])

Importing the package changes nothing global and loads no TensorFlow: `Scorer` is imported when first used, and
the entry points quieten TensorFlow themselves (captioning.util.cli).
"""

__all__ = ["Scorer"]


def __getattr__(name):
    if name == "Scorer":  # on first use: `import captioning` stays cheap
        from captioning.api import Scorer

        return Scorer
    raise AttributeError(f"module 'captioning' has no attribute {name!r}")
