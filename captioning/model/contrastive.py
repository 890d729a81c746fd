"""The contrastive head (CoCa-style): one unit vector per image and per text in a shared space, trained with a
symmetric InfoNCE loss beside the caption loss. Comparing them is a dot product, so an index can search a
collection with it; the caption scores then rerank the few candidates it returns.
"""

import keras
import numpy as np
from keras import layers

# CLIP's initial temperature 0.07, and its cap on the learned logit scale (temperature >= 0.01).
INITIAL_LOGIT_SCALE, MAX_LOGIT_SCALE = 1 / 0.07, 100.0


@keras.saving.register_keras_serializable(package="captioning")
class AttentionPool(layers.Layer):
    """A learned query attends over the image grid: [B, cells, features] -> [B, embed_dim]."""

    def __init__(self, embed_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.attention = layers.MultiHeadAttention(num_heads, embed_dim // num_heads, name="attention")
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="norm")

    def build(self, features_shape):
        self.query = self.add_weight(
            shape=(1, 1, self.embed_dim), name="query", initializer=keras.initializers.RandomNormal(stddev=0.02)
        )
        self.attention.build((None, 1, self.embed_dim), tuple(features_shape))
        self.norm.build((None, self.embed_dim))

    def call(self, features):
        query = keras.ops.broadcast_to(
            keras.ops.cast(self.query, features.dtype), (keras.ops.shape(features)[0], 1, self.embed_dim)
        )
        return self.norm(self.attention(query, features)[:, 0])

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="captioning")
class TextEncoderBlock(layers.Layer):
    """One pre-norm Transformer block over the words alone (no image), every word seeing every other one."""

    def __init__(self, embed_dim, num_heads, ff_dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.dropout_rate = embed_dim, num_heads, ff_dim, dropout
        self.attention = layers.MultiHeadAttention(
            num_heads, embed_dim // num_heads, dropout=dropout, name="self_attention"
        )
        self.feed_forward = keras.Sequential(
            [layers.Dense(ff_dim, activation="gelu", name="expand"), layers.Dense(embed_dim, name="contract")],
            name="feed_forward",
        )
        self.norms = [layers.LayerNormalization(epsilon=1e-5, name=f"norm{i}") for i in range(2)]

    def call(self, x, mask, training=False):
        pairs = keras.ops.logical_and(mask[:, :, None], mask[:, None, :])  # padding neither attends nor is seen
        h = self.norms[0](x)
        x = x + self.attention(h, h, attention_mask=pairs, training=training)
        return x + self.feed_forward(self.norms[1](x))

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package="captioning")
class ContrastiveHead(layers.Layer):
    """Image grid -> attention pooling -> projection; embedded caption tokens -> a text-only block -> the [end]
    token's state -> projection; both L2-normalised to `output_dim`. Holds the learned logit scale (the inverse
    temperature) of the InfoNCE loss."""

    def __init__(self, embed_dim, num_heads, ff_dim, output_dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim = embed_dim, num_heads, ff_dim
        self.output_dim, self.dropout_rate = output_dim, dropout
        self.image_pool = AttentionPool(embed_dim, num_heads, name="image_pool")
        self.text_block = TextEncoderBlock(embed_dim, num_heads, ff_dim, dropout, name="text_block")
        self.text_norm = layers.LayerNormalization(epsilon=1e-5, name="text_norm")
        self.image_projection = layers.Dense(output_dim, use_bias=False, name="image_projection")
        self.text_projection = layers.Dense(output_dim, use_bias=False, name="text_projection")

    def build(self, features_shape):
        """Creates the logit scale; the sublayers build on first use (Captioner.build_all embeds a dummy pair)."""
        self.log_logit_scale = self.add_weight(
            shape=(), name="log_logit_scale", initializer=keras.initializers.Constant(np.log(INITIAL_LOGIT_SCALE))
        )

    def embed_images(self, image_features):
        """[B, cells, features] -> [B, output_dim], unit length."""
        return _unit(self.image_projection(self.image_pool(image_features)))

    def embed_texts(self, token_embeddings, mask, training=False):
        """Embedded tokens w1..wn [end] [B, L, embed_dim] with their mask [B, L] -> [B, output_dim], unit length."""
        mask = keras.ops.cast(mask, "bool")
        states = self.text_block(token_embeddings, mask, training=training)
        end = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1) - 1  # the [end] token closes every text
        at_end = keras.ops.one_hot(end, keras.ops.shape(states)[1], dtype=states.dtype)
        pooled = keras.ops.sum(states * at_end[:, :, None], axis=1)
        return _unit(self.text_projection(self.text_norm(pooled)))

    def logit_scale(self):
        return keras.ops.minimum(keras.ops.exp(self.log_logit_scale), MAX_LOGIT_SCALE)

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "output_dim": self.output_dim,
            "dropout": self.dropout_rate,
        }


def _unit(x):
    x = keras.ops.cast(x, "float32")  # cosine similarities compare at full precision, as the logits do
    return x / keras.ops.sqrt(keras.ops.maximum(keras.ops.sum(x * x, axis=-1, keepdims=True), 1e-12))
