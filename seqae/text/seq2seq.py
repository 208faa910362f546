"""Shared pieces of the text plugin's sequence-to-sequence models (the summary generator and the
article reconstructor): a bidirectional GRU encoder over padded batches, additive attention, a
GRU decoder step with input feeding, and the pointer-generator's copy mixture.

The encoder reads ``(B, T)`` ids with their lengths (packed, so padding never reaches a real
position) and returns a :class:`Memory`; the decoder advances one token at a time from a
:class:`DecoderState`:

    >>> core = AttentionSeq2Seq(vocab_size=V, emb_dim=128, hidden=256, layers=1, pad_id=0)
    >>> memory, state = core.encode(ids, lengths)          # (B, T, 2H) states, (B, T) mask
    >>> step = core.step(prev_ids, state, memory)          # step.features: (B, 3H)

Attention is Bahdanau et al.'s additive score ``v . tanh(W_h h_i + W_s s_t)`` (arXiv 1409.0473),
computed from the decoder's new state as in See et al. 2017 (arXiv 1704.04368, eq. 1-3).
:func:`copy_mixture` is their final distribution (eq. 9): ``p_gen P_vocab(w) + (1 - p_gen)
sum_{i: x_i = w} a_i`` over the extended vocabulary (the vocabulary, then the source's
out-of-vocabulary words).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "TINY",
    "Source",
    "Summaries",
    "Memory",
    "DecoderState",
    "Step",
    "AdditiveAttention",
    "AttentionSeq2Seq",
    "lengths_mask",
    "in_vocab",
    "copy_mixture",
    "select_memory",
    "select_state",
    "masked_log",
    "entropy_of",
]

#: Floor of probabilities before their log: an extended id a batch row cannot reach (another
#: row's out-of-vocabulary word, a masked special token) gets ``log(TINY)`` instead of ``-inf``.
TINY = 1e-30


class Source(Protocol):
    """A batch of token sequences in the articles' extended vocabulary, as the reconstructor
    reads summaries: the generator's :class:`~seqae.text.generator.Sampled` and
    :class:`~seqae.text.generator.Decoded` are ones, and :class:`Summaries` builds one."""

    @property
    def ids(self) -> Tensor: ...  # (B, T) extended ids, padded

    @property
    def lengths(self) -> Tensor: ...  # (B,) real lengths

    @property
    def max_oovs(self) -> int: ...  # extended ids reach vocab_size + max_oovs - 1


class Summaries(NamedTuple):
    """Summaries written by hand or taken from a corpus (e.g. ``TargetBatch.extended_ids`` and
    ``lengths`` with ``ExtendedBatch.max_oovs``)."""

    ids: Tensor
    lengths: Tensor
    max_oovs: int = 0


class Memory(NamedTuple):
    """The encoded source, what attention reads."""

    #: ``(B, T, 2H)`` encoder states (zeros at padding).
    states: Tensor
    #: ``(B, T, A)`` the attention's projection of the states, computed once.
    keys: Tensor
    #: ``(B, T)`` True at real (non-padding) positions.
    mask: Tensor


class DecoderState(NamedTuple):
    """The decoder's state between steps."""

    #: ``(L, B, H)`` GRU hidden state.
    hidden: Tensor
    #: ``(B, 2H)`` the last attention context (fed to the next step: input feeding).
    context: Tensor


class Step(NamedTuple):
    """One decoder step."""

    #: ``(B, H + 2H)`` ``[s_t; c_t]``: the top GRU state and the new context.
    features: Tensor
    #: ``(B, T)`` attention weights over the source (0 at padding; rows sum to 1).
    attention: Tensor
    #: ``(B, E)`` the embedded input token.
    inputs: Tensor
    #: The state for the next step.
    state: DecoderState


def check_settings(
    who: str,
    *,
    vocab_size: int,
    emb_dim: int,
    hidden: int,
    layers: int,
    dropout: float,
    **special_ids: int,
) -> None:
    """Refuse sizes a sequence-to-sequence model cannot be built with (one line naming ``who``).

    Args:
        who: The model's name, for the message.
        vocab_size, emb_dim, hidden, layers, dropout: The shared constructor arguments.
        special_ids: ``pad_id=...``, ``unk_id=...``, ...: each must be a vocabulary id.
    """
    if vocab_size <= max(special_ids.values()) or min(special_ids.values()) < 0:
        raise ValueError(f"{who}: special ids {special_ids} must lie in 0..vocab_size-1")
    for name, value in (("emb_dim", emb_dim), ("hidden", hidden), ("layers", layers)):
        if value < 1:
            raise ValueError(f"{who}: {name} must be >= 1, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout}")


def lengths_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, max_len)`` True at positions ``< lengths[b]``."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def in_vocab(ids: Tensor, vocab_size: int, unk_id: int) -> Tensor:
    """Extended ids with every id ``>= vocab_size`` replaced by ``unk_id`` (what an embedding
    takes)."""
    return ids.masked_fill(ids >= vocab_size, unk_id)


def copy_mixture(
    vocab_probs: Tensor, p_gen: Tensor, attention: Tensor, source_ids: Tensor, max_oovs: int
) -> Tensor:
    """The pointer-generator's distribution over the extended vocabulary (See et al. eq. 9).

    Args:
        vocab_probs: ``(B, V)`` the generator's softmax over the vocabulary.
        p_gen: ``(B, 1)`` probability of generating rather than copying.
        attention: ``(B, T)`` attention over the source (0 at padding).
        source_ids: ``(B, T)`` the source's extended ids.
        max_oovs: Extended ids beyond the vocabulary in this batch.

    Returns:
        ``(B, V + max_oovs)`` probabilities (each row sums to 1).
    """
    extra = vocab_probs.new_zeros(vocab_probs.shape[0], max_oovs)
    generated = torch.cat([p_gen * vocab_probs, extra], dim=1)  # (B, V + max_oovs)
    return generated.scatter_add(1, source_ids, (1.0 - p_gen) * attention)


class AdditiveAttention(nn.Module):
    """Bahdanau attention ``a = softmax_i(v . tanh(W_h h_i + W_s s + b))`` over real positions.

    Args:
        query_dim: Size of the decoder state ``s``.
        memory_dim: Size of the encoder states ``h_i``.
        attn_dim: Size of the hidden layer of the score.
    """

    def __init__(self, *, query_dim: int, memory_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(memory_dim, attn_dim, bias=False)  # W_h
        self.query = nn.Linear(query_dim, attn_dim)  # W_s, b
        self.score = nn.Linear(attn_dim, 1, bias=False)  # v

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """``query (B, Q)`` -> ``(context (B, M), weights (B, T))``."""
        energy = torch.tanh(memory.keys + self.query(query).unsqueeze(1))  # (B, T, A)
        scores = self.score(energy).squeeze(-1)  # (B, T)
        weights = torch.softmax(scores.masked_fill(~memory.mask, float("-inf")), dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory.states).squeeze(1)  # (B, M)
        return context, weights


class AttentionSeq2Seq(nn.Module):
    """Embedding + bidirectional GRU encoder + attentive GRU decoder (shared embedding).

    Args:
        vocab_size: Ids ``0 .. vocab_size - 1`` (extended ids must be mapped to ``<unk>``
            first: :func:`in_vocab`).
        emb_dim: Word embedding size (shared by the encoder and the decoder).
        hidden: GRU size ``H`` (each direction of the encoder, and the decoder).
        layers: GRU layers of the encoder and of the decoder.
        dropout: Dropout on the embeddings, between GRU layers and on the output features.
        pad_id: Padding id (its embedding stays zero).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        emb_dim: int,
        hidden: int,
        layers: int,
        dropout: float,
        pad_id: int,
    ) -> None:
        super().__init__()
        between = dropout if layers > 1 else 0.0
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.GRU(
            emb_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=between
        )
        self.bridge = nn.Linear(2 * hidden, hidden)  # final encoder states -> decoder's first
        self.decoder = nn.GRU(emb_dim + 2 * hidden, hidden, layers, dropout=between)
        self.attention = AdditiveAttention(query_dim=hidden, memory_dim=2 * hidden, attn_dim=hidden)
        self.hidden, self.layers = hidden, layers
        #: Size of :attr:`Step.features`.
        self.features_dim = 3 * hidden

    def encode(self, ids: Tensor, lengths: Tensor) -> tuple[Memory, DecoderState]:
        """Read the source.

        Args:
            ids: ``(B, T)`` in-vocabulary ids, padded.
            lengths: ``(B,)`` real lengths (each >= 1).

        Returns:
            The :class:`Memory` and the decoder's first :class:`DecoderState`.
        """
        if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
            raise ValueError(
                f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} and "
                f"{tuple(lengths.shape)}"
            )
        if bool((lengths < 1).any()) or int(lengths.max()) > ids.shape[1]:
            raise ValueError(
                f"every source needs 1 to {ids.shape[1]} tokens; got lengths {lengths.tolist()}"
            )
        b, t = ids.shape
        x = self.drop(self.embedding(ids))  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.encoder(packed)  # h_n: (2L, B, H)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, 2H)
        final = h_n.view(self.layers, 2, b, self.hidden)  # (L, fwd/bwd, B, H)
        final = torch.cat([final[:, 0], final[:, 1]], dim=-1)  # (L, B, 2H)
        memory = Memory(states, self.attention.key(states), lengths_mask(lengths, t))
        state = DecoderState(
            hidden=torch.tanh(self.bridge(final)),  # (L, B, H)
            context=states.new_zeros(b, 2 * self.hidden),
        )
        return memory, state

    def step(self, prev_ids: Tensor, state: DecoderState, memory: Memory) -> Step:
        """Advance the decoder by one token.

        Args:
            prev_ids: ``(B,)`` the previous in-vocabulary token (``<s>`` first).
            state: The state after the previous step.
            memory: The encoded source.
        """
        emb = self.drop(self.embedding(prev_ids))  # (B, E)
        x = torch.cat([emb, state.context], dim=-1).unsqueeze(0)  # (1, B, E + 2H)
        out, hidden = self.decoder(x, state.hidden)  # out: (1, B, H)
        s_t = out.squeeze(0)  # (B, H)
        context, attention = self.attention(s_t, memory)  # (B, 2H), (B, T)
        features = self.drop(torch.cat([s_t, context], dim=-1))  # (B, 3H)
        return Step(features, attention, emb, DecoderState(hidden, context))


def select_memory(memory: Memory, index: Tensor) -> Memory:
    """Batch rows ``index`` (``(N,)``, repeats allowed) of a memory (beam search)."""
    return Memory(*(m.index_select(0, index) for m in memory))


def select_state(state: DecoderState, index: Tensor) -> DecoderState:
    """Batch rows ``index`` (``(N,)``, repeats allowed) of a decoder state (beam search)."""
    return DecoderState(state.hidden.index_select(1, index), state.context.index_select(0, index))


def masked_log(probs: Tensor) -> Tensor:
    """``log`` of probabilities, floored at :data:`TINY` (finite where a probability is 0)."""
    return torch.log(probs.clamp_min(TINY))


def entropy_of(probs: Tensor) -> Tensor:
    """``-sum p log p`` over the last axis (0 log 0 = 0)."""
    return -(probs * masked_log(probs)).sum(dim=-1)
