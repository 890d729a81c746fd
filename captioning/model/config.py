"""The model's shape as a plain object: flags only override it, and it is saved as JSON beside every trained
model so the model can be rebuilt exactly."""

import dataclasses
import json


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a Captioner (the vocabulary itself is stored beside it)."""

    vocab_size: int = 0  # filled in from the vocabulary
    max_length: int = 20  # decoder positions: [start] + up to max_length - 1 words; the same count is scored
    image_size: int = 64
    backbone: str = "small_cnn"  # "small_cnn" or a keras.applications name (see captioning.model.encoder)
    backbone_weights: str = "none"  # "imagenet", "none" or a path to a .weights.h5 file (keras.applications)
    train_backbone: bool = False  # fine-tune a keras.applications backbone (the small CNN always trains)
    embed_dim: int = 128
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 256
    dropout: float = 0.1
    image_dropout: float = 0.1  # fraction of training examples that see the learned null image
    context_heads: int = 4  # heads of the encoder's cell context (cell_context.CellContext); 0: none
    contrastive_dim: int = 128  # width of the contrastive head's image and text embeddings; 0: no head

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        # Saved before the contrastive head or the cell context existed: a model without them.
        values = {"contrastive_dim": 0, "context_heads": 0, **values}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def load(cls, path: str) -> "ModelConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
