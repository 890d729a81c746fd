"""Transformer decoder: token ids + image features -> next-token logits.

Small named layers, each readable on one screen: token+position embedding, causal self-attention,
cross-attention to the image grid, feed-forward; pre-layer-norm residual blocks.

Image features are [B, cells, feature_dim]: each cell's content, its context (how much of its kind the image
holds) and its position (encoder.ImageEncoder). Cross-attention matches words against the content alone and reads
all three together.
"""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="captioning")
class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, vocab_size, max_length, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_length, self.embed_dim = vocab_size, max_length, embed_dim
        self.tokens = layers.Embedding(vocab_size, embed_dim, name="tokens")
        self.positions = layers.Embedding(max_length, embed_dim, name="positions")

    def call(self, token_ids):
        positions = keras.ops.arange(keras.ops.shape(token_ids)[1])
        return self.tokens(token_ids) + self.positions(positions)[None]

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "embed_dim": self.embed_dim,
        }


@keras.saving.register_keras_serializable(package="captioning")
class DecoderBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.dropout_rate = embed_dim, num_heads, ff_dim, dropout
        key_dim = embed_dim // num_heads
        self.self_attention = layers.MultiHeadAttention(num_heads, key_dim, dropout=dropout, name="self_attention")
        self.cross_attention = layers.MultiHeadAttention(num_heads, key_dim, dropout=dropout, name="cross_attention")
        self.feed_forward = keras.Sequential(
            [layers.Dense(ff_dim, activation="gelu", name="expand"), layers.Dense(embed_dim, name="contract")],
            name="feed_forward",
        )
        self.norms = [layers.LayerNormalization(epsilon=1e-5, name=f"norm{i}") for i in range(3)]
        self.dropout = layers.Dropout(dropout)

    def call(self, x, image_features, training=False, return_attention=False):
        """-> the block's output, and with `return_attention` also the cross-attention weights [B, heads, L,
        cells]."""
        h = self.norms[0](x)
        x = x + self.dropout(self.self_attention(h, h, use_causal_mask=True, training=training), training=training)
        h = self.norms[1](x)
        content = image_features[..., : self.embed_dim]
        attended, attention = self.cross_attention(
            h, value=image_features, key=content, training=training, return_attention_scores=True
        )
        x = x + self.dropout(attended, training=training)
        x = x + self.dropout(self.feed_forward(self.norms[2](x)), training=training)
        return (x, attention) if return_attention else x

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
        }


@keras.saving.register_keras_serializable(package="captioning")
class CaptionDecoder(layers.Layer):
    def __init__(self, vocab_size, max_length, embed_dim, num_heads, num_layers, ff_dim, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_length, self.embed_dim = vocab_size, max_length, embed_dim
        self.num_heads, self.num_layers, self.ff_dim, self.dropout_rate = num_heads, num_layers, ff_dim, dropout
        self.embedding = TokenAndPositionEmbedding(vocab_size, max_length, embed_dim, name="embedding")
        self.blocks = [DecoderBlock(embed_dim, num_heads, ff_dim, dropout, name=f"block{i}") for i in range(num_layers)]
        self.final_norm = layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        # Logits stay float32 under mixed precision so log-probabilities are exact enough to compare.
        self.output_layer = layers.Dense(vocab_size, dtype="float32", name="logits")

    def call(self, token_ids, image_features, training=False, return_attention=False):
        """-> next-token logits [B, L, vocab], and with `return_attention` also each block's cross-attention
        weights [B, heads, L, cells]: where the model looked when it predicted each next token."""
        x, attention = self.embedding(token_ids), []
        for block in self.blocks:
            x, weights = block(x, image_features, training=training, return_attention=True)
            attention.append(weights)
        logits = self.output_layer(self.final_norm(x))
        return (logits, attention) if return_attention else logits

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
        }
