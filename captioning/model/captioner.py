"""The Captioner: image encoder + learned null image + Transformer decoder, and optionally a contrastive head
that embeds images and texts on their own (CoCa-style)."""

import dataclasses

import keras
import numpy as np

from captioning.data.text import PAD_ID
from captioning.model.config import ModelConfig
from captioning.model.contrastive import ContrastiveHead
from captioning.model.decoder import CaptionDecoder
from captioning.model.encoder import ImageEncoder


@keras.saving.register_keras_serializable(package="captioning")
class Captioner(keras.Model):
    """Scores and generates captions. `call` takes pixels [B, S, S, 3] in [0, 255], decoder input ids [B, L]
    and a per-example `use_null_image` flag (image dropout, decided by the data pipeline so that it does not
    depend on the number of replicas) and returns next-token logits [B, L, vocab]."""

    def __init__(self, config: dict, **kwargs):
        # A fixed name, not Keras' numbered default: checkpoints key variables by their path (variables_by_path).
        super().__init__(**{"name": "captioner", **kwargs})
        self.config = ModelConfig.from_dict(config) if isinstance(config, dict) else config
        c = self.config
        self.encoder = ImageEncoder(
            c.backbone,
            c.backbone_weights,
            c.train_backbone,
            c.image_size,
            c.embed_dim,
            c.context_heads,
            name="image_encoder",
        )
        self.decoder = CaptionDecoder(
            c.vocab_size, c.max_length, c.embed_dim, c.num_heads, c.num_layers, c.ff_dim, c.dropout, name="decoder"
        )
        self.contrastive = (
            ContrastiveHead(c.embed_dim, c.num_heads, c.ff_dim, c.contrastive_dim, c.dropout, name="contrastive")
            if c.contrastive_dim
            else None
        )
        self.build_all()

    def build_all(self):
        """Creates every variable now, so checkpoints and weights files can be restored right away."""
        c = self.config
        features = self.encoder(np.zeros((1, c.image_size, c.image_size, 3), np.float32))
        # The learned null image stands in for "no image": the decoder then estimates the text prior.
        self.null_image = self.add_weight(
            shape=(self.encoder.num_cells, self.encoder.feature_dim),
            name="null_image",
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        self.decoder(np.zeros((1, c.max_length), np.int32), features)
        if self.contrastive:
            self.contrastive.build(features.shape)
            self.embed_images(features)
            self.embed_texts(np.zeros((1, c.max_length), np.int32))
        self.built = True

    def encode_images(self, images, training=False):
        return self.encoder(images, training=training)

    def null_features(self, batch_size):
        null = keras.ops.cast(self.null_image, self.compute_dtype)
        return keras.ops.broadcast_to(null[None], (batch_size, *null.shape))

    def decode(self, image_features, input_ids, training=False, return_attention=False):
        return self.decoder(input_ids, image_features, training=training, return_attention=return_attention)

    def with_null_image(self, image_features, use_null_image):
        """The features with the null image in place of those rows whose `use_null_image` [B] is true."""
        null = self.null_features(keras.ops.shape(image_features)[0])
        return keras.ops.where(use_null_image[:, None, None], null, image_features)

    def embed_images(self, image_features):
        """Encoded images [B, cells, features] -> the contrastive head's unit embeddings [B, contrastive_dim]."""
        return self.contrastive.embed_images(image_features)

    def embed_texts(self, target_ids, training=False):
        """Caption targets w1..wn [end] (padded) [B, L] -> unit embeddings [B, contrastive_dim]. The text path
        shares the decoder's token and position embeddings but never sees the image."""
        mask = keras.ops.not_equal(target_ids, PAD_ID)
        return self.contrastive.embed_texts(self.decoder.embedding(target_ids), mask, training=training)

    def call(self, images, input_ids, use_null_image=None, training=False):
        features = self.encode_images(images, training=training)
        if use_null_image is not None:
            features = self.with_null_image(features, use_null_image)
        return self.decode(features, input_ids, training=training)

    def variables_by_path(self) -> dict:
        """Every variable under its Keras path, unique and the same in every process (each layer is named): what
        tf.train.Checkpoint must be given. Keras 3 leaves layers held in lists (the decoder's blocks, the small
        CNN's stages) out of TensorFlow's object graph, so `tf.train.Checkpoint(model=captioner)` would save and
        restore only part of the model, silently."""
        by_path = {variable.path: variable for variable in self.variables}
        if len(by_path) != len(self.variables):
            raise ValueError("two of the model's variables share a path; name the layers apart")
        return by_path

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "name": self.name}
