"""The Python API: `Scorer`, an exported model (local or served) as one object for notebooks and programs."""

from captioning.api.scorer import Scorer, ScorerInputError

__all__ = ["Scorer", "ScorerInputError"]
