"""Shared pieces of the text plugin's sequence-to-sequence models (the summary generator and the
article reconstructor): a bidirectional GRU (or LSTM) encoder over padded batches, additive
attention, a GRU (or LSTM) decoder step with input feeding, and the pointer-generator's copy
mixture. The transformer cores with the same interface are in :mod:`seqae.text.backbones`.

The encoder reads ``(B, T)`` ids with their lengths (packed, so padding never reaches a real
position) and returns a :class:`Memory`; the decoder advances one token at a time from a
:class:`DecoderState`:

    >>> core = AttentionSeq2Seq(vocab_size=V, emb_dim=128, hidden=256, layers=1, pad_id=0)
    >>> memory, state = core.encode(ids, lengths)          # (B, T, 2H) states, (B, T) mask
    >>> step = core.step(prev_ids, state, memory)          # step.features: (B, 3H)
    >>> for step in core.teacher_forced(inputs, state, memory): ...  # the steps over inputs
    >>> state = select_state(step.state, index)            # beam search: rows index, repeats ok

Attention is Bahdanau et al.'s additive score ``v . tanh(W_h h_i + W_s s_t)`` (arXiv 1409.0473),
computed from the decoder's new state as in See et al. 2017 (arXiv 1704.04368, eq. 1-3).
:func:`copy_mixture` is their final distribution (eq. 9): ``p_gen P_vocab(w) + (1 - p_gen)
sum_{i: x_i = w} a_i`` over the extended vocabulary (the vocabulary, then the source's
out-of-vocabulary words).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol, Self

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "TINY",
    "Source",
    "Summaries",
    "Memory",
    "State",
    "DecoderState",
    "Step",
    "RNN_CELLS",
    "AdditiveAttention",
    "AttentionSeq2Seq",
    "lengths_mask",
    "check_source",
    "init_token_model",
    "in_vocab",
    "copy_mixture",
    "select_memory",
    "select_state",
    "masked_log",
    "entropy_of",
]

#: The recurrent cells :class:`AttentionSeq2Seq` (and the prefix discriminator) can use.
RNN_CELLS = ("gru", "lstm")

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


class State(Protocol):
    """A decoder's state between steps, whatever the core: it can pick batch rows (beam
    search). :class:`DecoderState` and :class:`seqae.text.backbones.TransformerState` are ones."""

    def select(self, index: Tensor) -> Self:
        """Batch rows ``index`` (``(N,)``, repeats allowed), as a new state."""
        ...


class DecoderState(NamedTuple):
    """The recurrent decoder's state between steps."""

    #: ``(L, B, H)`` GRU (or LSTM) hidden state.
    hidden: Tensor
    #: ``(B, 2H)`` the last attention context (fed to the next step: input feeding).
    context: Tensor
    #: ``(L, B, H)`` the LSTM's memory cell (None for a GRU).
    cell: Tensor | None = None

    def select(self, index: Tensor) -> DecoderState:
        """Batch rows ``index`` (``(N,)``, repeats allowed)."""
        return DecoderState(
            self.hidden.index_select(1, index),
            self.context.index_select(0, index),
            None if self.cell is None else self.cell.index_select(1, index),
        )


class Step(NamedTuple):
    """One decoder step."""

    #: ``(B, F)`` what the output layers read: ``[s_t; c_t]``, the top decoder state and the
    #: attention context (``F = 3H`` for the recurrent core).
    features: Tensor
    #: ``(B, T)`` attention weights over the source (0 at padding; rows sum to 1).
    attention: Tensor
    #: ``(B, E)`` the embedded input token.
    inputs: Tensor
    #: The state for the next step.
    state: State  # DecoderState, TransformerState, ...


def init_token_model(
    model: nn.Module,
    who: str,
    *,
    vocab_size: int,
    emb_dim: int,
    hidden: int,
    layers: int,
    dropout: float,
    pad_id: int,
    unk_id: int,
    bos_id: int,
    eos_id: int,
) -> None:
    """Check a text model's shared constructor arguments (refusing a bad one in one line naming
    ``who``), keep them on ``model`` as attributes of the same names, and register its
    ``never`` buffer: ``(V,)`` True at ``<pad>`` and ``<s>``, the tokens it never predicts (not
    saved).

    Args:
        model: The model being built (after ``nn.Module.__init__``).
        who: The model's name, for messages.
        vocab_size, emb_dim, hidden, layers, dropout: Its sizes and dropout.
        pad_id, unk_id, bos_id, eos_id: Its special ids (each a vocabulary id).

    Raises:
        ValueError: A special id outside the vocabulary, a size below 1, or a dropout outside
            ``[0, 1)``.
    """
    special_ids = {"pad_id": pad_id, "unk_id": unk_id, "bos_id": bos_id, "eos_id": eos_id}
    if vocab_size <= max(special_ids.values()) or min(special_ids.values()) < 0:
        raise ValueError(f"{who}: special ids {special_ids} must lie in 0..vocab_size-1")
    for name, value in (("emb_dim", emb_dim), ("hidden", hidden), ("layers", layers)):
        if value < 1:
            raise ValueError(f"{who}: {name} must be >= 1, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout}")
    model.vocab_size, model.emb_dim = vocab_size, emb_dim
    model.hidden, model.layers, model.dropout = hidden, layers, dropout
    model.pad_id, model.unk_id, model.bos_id, model.eos_id = pad_id, unk_id, bos_id, eos_id
    never = torch.zeros(vocab_size, dtype=torch.bool)
    never[[pad_id, bos_id]] = True
    model.register_buffer("never", never, persistent=False)


def check_source(ids: Tensor, lengths: Tensor) -> None:
    """Refuse a source batch that is not ``(B, T)`` ids with ``(B,)`` lengths in ``1..T``."""
    if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
        raise ValueError(
            f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} and "
            f"{tuple(lengths.shape)}"
        )
    if bool((lengths < 1).any()) or int(lengths.max()) > ids.shape[1]:
        raise ValueError(
            f"every source needs 1 to {ids.shape[1]} tokens; got lengths {lengths.tolist()}"
        )


def check_cell(who: str, cell: str) -> None:
    """Refuse a recurrent cell other than those of :data:`RNN_CELLS` (one line naming ``who``)."""
    if cell not in RNN_CELLS:
        raise ValueError(f"{who}: cell must be one of {', '.join(RNN_CELLS)}; got {cell!r}")


def lengths_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B, max_len)`` True at positions ``< lengths[b]``."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def in_vocab(ids: Tensor, vocab_size: int, unk_id: int) -> Tensor:
    """Extended ids with every id ``>= vocab_size`` replaced by ``unk_id`` (what an embedding
    takes)."""
    return ids.masked_fill(ids >= vocab_size, unk_id)


def embed_soft(embedding: nn.Embedding, soft: Tensor, unk_id: int) -> Tensor:
    """Embed relaxed one-hot tokens over an extended vocabulary.

    Args:
        embedding: The vocabulary's embedding (``V`` rows).
        soft: ``(..., V + k)`` weights over the extended vocabulary (a straight-through
            one-hot, :attr:`~seqae.text.generator.Sampled.soft`; 0 at padding).
        unk_id: ``<unk>``: every extended id reads as it, as :func:`in_vocab` maps hard ids.

    Returns:
        ``(..., E)`` the weighted mixture of embeddings: for a one-hot exactly its token's
        embedding, with gradient with respect to ``soft``.
    """
    v = embedding.num_embeddings
    x = soft[..., :v] @ embedding.weight
    if soft.shape[-1] > v:
        x = x + soft[..., v:].sum(dim=-1, keepdim=True) * embedding.weight[unk_id]
    return x * getattr(embedding, "embed_scale", 1.0)  # BART's scaled embedding


def copy_mixture(
    vocab_probs: Tensor, p_gen: Tensor, attention: Tensor, source_ids: Tensor, max_oovs: int
) -> Tensor:
    """The pointer-generator's distribution over the extended vocabulary (See et al. eq. 9).

    One decoder step, or all steps of a teacher-forced pass at once (an extra axis ``S``).

    Args:
        vocab_probs: ``(B, V)`` (or ``(B, S, V)``) the generator's softmax over the vocabulary.
        p_gen: ``(B, 1)`` (or ``(B, S, 1)``) probability of generating rather than copying.
        attention: ``(B, T)`` (or ``(B, S, T)``) attention over the source (0 at padding).
        source_ids: ``(B, T)`` the source's extended ids.
        max_oovs: Extended ids beyond the vocabulary in this batch.

    Returns:
        ``(B, V + max_oovs)`` (or ``(B, S, V + max_oovs)``) probabilities (rows sum to 1).
    """
    extra = vocab_probs.new_zeros(*vocab_probs.shape[:-1], max_oovs)
    generated = torch.cat([p_gen * vocab_probs, extra], dim=-1)  # (B, [S,] V + max_oovs)
    if attention.dim() == 3:  # every step points into the same source
        source_ids = source_ids.unsqueeze(1).expand_as(attention)
    return generated.scatter_add(-1, source_ids, (1.0 - p_gen) * attention)


def pointer_distribution(
    out: nn.Linear,
    switch: nn.Linear | None,
    never: Tensor,
    step: Step,
    source_ids: Tensor,
    max_oovs: int,
) -> tuple[Tensor, Tensor | None]:
    """The next-token distribution of a pointer-generator head, for one step or for all steps
    of a teacher-forced pass at once (the step's fields then have a time axis ``S``).

    Args:
        out: The vocabulary layer over ``step.features``.
        switch: The ``p_gen`` layer over ``[features; inputs]`` (None: no copying).
        never: ``(V,)`` True for tokens never generated (``<pad>``, ``<s>``).
        step: ``features (B, [S,] F)``, ``inputs (B, [S,] E)``, ``attention (B, [S,] T)``.
        source_ids: ``(B, T)`` the source's extended ids (what is copied).
        max_oovs: Extended ids beyond the vocabulary in this batch.

    Returns:
        ``(probs, p_gen)``: ``(B, [S,] V + max_oovs)`` probabilities (``V`` without copying)
        and ``(B, [S,] 1)`` (None without copying).
    """
    logits = out(step.features).masked_fill(never, float("-inf"))  # (B, [S,] V)
    probs = torch.softmax(logits, dim=-1)
    if switch is None:
        return probs, None
    p_gen = torch.sigmoid(switch(torch.cat([step.features, step.inputs], dim=-1)))
    return copy_mixture(probs, p_gen, step.attention, source_ids, max_oovs), p_gen


def stack_steps(steps: list[Step]) -> Step:
    """Steps of a teacher-forced pass as one :class:`Step` with a time axis (``state``: the
    last step's)."""
    return Step(
        torch.stack([s.features for s in steps], dim=1),
        torch.stack([s.attention for s in steps], dim=1),
        torch.stack([s.inputs for s in steps], dim=1),
        steps[-1].state,
    )


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
    """Embedding + bidirectional GRU (or LSTM) encoder + attentive GRU (or LSTM) decoder
    (shared embedding).

    Args:
        vocab_size: Ids ``0 .. vocab_size - 1`` (extended ids must be mapped to ``<unk>``
            first: :func:`in_vocab`).
        emb_dim: Word embedding size (shared by the encoder and the decoder).
        hidden: RNN size ``H`` (each direction of the encoder, and the decoder).
        layers: RNN layers of the encoder and of the decoder.
        dropout: Dropout on the embeddings, between RNN layers and on the output features.
        pad_id: Padding id (its embedding stays zero).
        cell: ``"gru"`` (the default; fast on a CPU) or ``"lstm"``. An LSTM's first decoder
            state takes the encoder's final hidden states through ``tanh(bridge(.))`` as a
            GRU's does, and its final memory cells through a linear ``bridge_cell``.
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
        cell: str = "gru",
    ) -> None:
        super().__init__()
        check_cell("AttentionSeq2Seq", cell)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        between = dropout if layers > 1 else 0.0
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.encoder = rnn(
            emb_dim, hidden, layers, batch_first=True, bidirectional=True, dropout=between
        )
        self.bridge = nn.Linear(2 * hidden, hidden)  # final encoder states -> decoder's first
        self.decoder = rnn(emb_dim + 2 * hidden, hidden, layers, dropout=between)
        self.attention = AdditiveAttention(query_dim=hidden, memory_dim=2 * hidden, attn_dim=hidden)
        # the LSTM's final memory cells -> the decoder's first (no squashing: cells are unbounded)
        self.bridge_cell = nn.Linear(2 * hidden, hidden) if cell == "lstm" else None
        self.emb_dim, self.hidden, self.layers, self.cell = emb_dim, hidden, layers, cell
        #: Size of :attr:`Step.features`.
        self.features_dim = 3 * hidden
        #: Size of :attr:`Step.inputs`.
        self.inputs_dim = emb_dim

    @property
    def config(self) -> dict[str, Any]:
        """The backbone's entries of a model's config (the model adds the shared ones)."""
        return {
            "backbone": "rnn",
            "cell": self.cell,
            "emb_dim": self.emb_dim,
            "hidden": self.hidden,
            "layers": self.layers,
        }

    def init_output(self, out: nn.Linear) -> None:
        """Initialise a model's vocabulary layer over :attr:`Step.features` (nothing to do: a
        recurrent core has no pretrained output layer)."""

    def encode(
        self, ids: Tensor, lengths: Tensor, *, embedded: Tensor | None = None
    ) -> tuple[Memory, DecoderState]:
        """Read the source.

        Args:
            ids: ``(B, T)`` in-vocabulary ids, padded.
            lengths: ``(B,)`` real lengths (each >= 1).
            embedded: ``(B, T, E)`` the source's embeddings instead of ``ids``' (relaxed
                tokens: :func:`embed_soft`).

        Returns:
            The :class:`Memory` and the decoder's first :class:`DecoderState`.
        """
        check_source(ids, lengths)
        b, t = ids.shape
        x = self.drop(self.embedding(ids) if embedded is None else embedded)  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)  # (2L, B, H); an LSTM's: (h_n, c_n)
        h_n, c_n = final if isinstance(final, tuple) else (final, None)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, 2H)
        memory = Memory(states, self.attention.key(states), lengths_mask(lengths, t))
        state = DecoderState(
            hidden=torch.tanh(self.bridge(self._both_directions(h_n, b))),  # (L, B, H)
            context=states.new_zeros(b, 2 * self.hidden),
            cell=None if c_n is None else self.bridge_cell(self._both_directions(c_n, b)),
        )
        return memory, state

    def _both_directions(self, final: Tensor, b: int) -> Tensor:
        """The encoder's ``(2L, B, H)`` final states -> ``(L, B, 2H)`` [forward; backward]."""
        final = final.view(self.layers, 2, b, self.hidden)  # (L, fwd/bwd, B, H)
        return torch.cat([final[:, 0], final[:, 1]], dim=-1)

    def step(self, prev_ids: Tensor, state: DecoderState, memory: Memory) -> Step:
        """Advance the decoder by one token.

        Args:
            prev_ids: ``(B,)`` the previous in-vocabulary token (``<s>`` first).
            state: The state after the previous step.
            memory: The encoded source.
        """
        emb = self.drop(self.embedding(prev_ids))  # (B, E)
        x = torch.cat([emb, state.context], dim=-1).unsqueeze(0)  # (1, B, E + 2H)
        if state.cell is None:
            out, hidden = self.decoder(x, state.hidden)  # out: (1, B, H)
            cell = None
        else:
            out, (hidden, cell) = self.decoder(x, (state.hidden, state.cell))
        s_t = out.squeeze(0)  # (B, H)
        context, attention = self.attention(s_t, memory)  # (B, 2H), (B, T)
        features = self.drop(torch.cat([s_t, context], dim=-1))  # (B, 3H)
        return Step(features, attention, emb, DecoderState(hidden, context, cell))

    def teacher_forced(self, inputs: Tensor, state: DecoderState, memory: Memory) -> Iterator[Step]:
        """The steps of reading ``inputs`` (``(B, S)`` in-vocabulary ids, ``<s>`` first), in
        order: what :meth:`step` gives token by token (a recurrent core reads one token at a
        time: input feeding; each step is computed when it is asked for)."""
        for t in range(inputs.shape[1]):
            step = self.step(inputs[:, t], state, memory)
            state = step.state
            yield step


def select_memory(memory: Memory, index: Tensor) -> Memory:
    """Batch rows ``index`` (``(N,)``, repeats allowed) of a memory (beam search)."""
    return Memory(*(m.index_select(0, index) for m in memory))


def select_state(state: State, index: Tensor) -> State:
    """Batch rows ``index`` (``(N,)``, repeats allowed) of any core's decoder state (beam
    search): its own ``select``."""
    return state.select(index)


def masked_log(probs: Tensor) -> Tensor:
    """``log`` of probabilities, floored at :data:`TINY` (finite where a probability is 0)."""
    return torch.log(probs.clamp_min(TINY))


def entropy_of(probs: Tensor) -> Tensor:
    """``-sum p log p`` over the last axis (0 log 0 = 0)."""
    return -(probs * masked_log(probs)).sum(dim=-1)
