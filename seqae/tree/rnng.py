"""A generative RNNG over binary trees: ``p(x, z)``, URNNG's generative model (Kim et al. 2019,
arXiv 1904.03746; Dyer et al. 2016, arXiv 1602.07776).

The sentence and its tree are generated left to right by SHIFT/REDUCE actions
(:mod:`seqae.tree.trees`): at each step a stack LSTM summarises the stack, an action
classifier gives ``p(REDUCE | stack)``; a SHIFT then predicts the next word from the same
summary and pushes its embedding, a REDUCE pops the two top subtrees and pushes their
composition (a binary TreeLSTM). ``log p(x, z)`` is the sum of the word terms and the action
terms:

    >>> rnng = RNNG(vocab_size=len(vocab), embed_dim=64, hidden_dim=64)
    >>> actions = indicators_to_actions(trees, lengths)       # (B, 2N - 1), trees (B, N, N)
    >>> out = rnng(tokens, actions, lengths)                  # RNNGOutput, each (B,)
    >>> out.log_prob == out.word_log_prob + out.action_log_prob

Only free choices are scored: with fewer than two subtrees on the stack SHIFT is forced, with
no word left to generate REDUCE is forced; neither has an action term.

End of sentence (``eos_id``): the tokens are the words only; the model appends ``</s>`` and
generates it by one more SHIFT once the tree is complete. ``</s>`` may only be predicted when
the stack holds exactly one subtree (a finished tree over the words so far), and every
word is predicted after at least one word, so ``p`` is a distribution over pairs of a
non-empty sentence and a binary tree over it (its perplexity compares with a language
model that also predicts ``</s>``). With ``eos_id=None`` the model is ``p(x, z | n)`` for
sentences of the given lengths: the REDUCEs forced after the last word end every tree.

Batching: all sentences of a batch step through their actions together (one composition and
one stack-LSTM update per step, for every row); shorter sentences are padded
(:data:`~seqae.tree.trees.PAD_ACTION` after their ``2n - 1`` actions) and stand still while
the longer ones finish, so bucketing by length only saves compute. The stack is a tensor of
subtree states and stack-LSTM states indexed by depth; the depth of each row before each step
follows from the actions alone and is computed up front (no host synchronisation in the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqae.core.saving import SavedByConfig
from seqae.tree.checks import check_token_settings
from seqae.tree.crf import as_lengths
from seqae.tree.trees import PAD_ACTION, REDUCE, SHIFT

__all__ = [
    "RNNG",
    "RNNGOutput",
    "StackLSTM",
    "TreeLSTMComposition",
    "append_eos",
    "check_tokens",
    "check_words",
]


class RNNGOutput(NamedTuple):
    """``log p(x, z)`` of each sentence and its two parts (nats, ``(B,)`` each)."""

    #: ``word_log_prob + action_log_prob``
    log_prob: Tensor
    #: sum of ``log p(word | stack)`` over the sentence's words (and ``</s>`` with ``eos_id``)
    word_log_prob: Tensor
    #: sum of ``log p(action | stack)`` over the free actions
    action_log_prob: Tensor


def check_tokens(who: str, tokens: Tensor, vocab_size: int) -> None:
    """Refuse anything but a ``(B, N)`` integer tensor of ids in ``0..vocab_size - 1``."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype.is_floating_point:
        shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"{who}: tokens must be a (B, N) integer tensor of ids, got {shape}")
    if tokens.shape[1] < 1:
        raise ValueError(f"{who}: tokens need at least one position, got {tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(
            f"{who}: token ids must be in 0..{vocab_size - 1} (map unknown words to <unk>), got "
            f"ids from {int(tokens.min())} to {int(tokens.max())}"
        )


def check_words(
    who: str, tokens: Tensor, lengths: Tensor, *, pad_id: int, eos_id: int | None
) -> None:
    """Refuse ``pad_id`` or ``eos_id`` among a sentence's words (the models append ``</s>``
    themselves; a ``<pad>`` inside a sentence means wrong lengths)."""
    inside = torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]
    for name, special in (("pad", pad_id), ("</s>", eos_id)):
        if special is None:
            continue
        found = (tokens == special) & inside
        if bool(found.any()):
            b = int(found.any(1).nonzero()[0, 0])
            raise ValueError(
                f"{who}: row {b} holds the {name} id {special} among its {int(lengths[b])} "
                "words; pass the words only (the model appends </s> itself) with their lengths"
            )


def append_eos(tokens: Tensor, lengths: Tensor, eos_id: int, pad_id: int) -> Tensor:
    """``(B, N + 1)``: each row's words, then ``eos_id`` at position ``lengths[b]``, then
    ``pad_id``."""
    out = torch.cat([tokens, tokens.new_full((tokens.shape[0], 1), pad_id)], dim=1)
    pos = torch.arange(out.shape[1], device=tokens.device)
    out = out.masked_fill(pos >= lengths[:, None], pad_id)
    return out.scatter(1, lengths[:, None], eos_id)


class TreeLSTMComposition(nn.Module):
    """Binary TreeLSTM (Tai et al. 2015, arXiv 1503.00075): two children ``(h, c)`` -> parent.

    ``c = f_l * c_l + f_r * c_r + i * tanh(g)``, ``h = o * tanh(c)``, the gates from one linear
    map of ``[h_l; h_r]`` (a forget gate per child, as in URNNG).

    Args:
        dim: Size of ``h`` and ``c`` (the RNNG's word embedding size).
    """

    def __init__(self, *, dim: int = 256) -> None:
        super().__init__()
        self.dim = dim
        self.gates = nn.Linear(2 * dim, 5 * dim)

    def forward(
        self, left: tuple[Tensor, Tensor], right: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Compose ``left`` and ``right`` (each ``(h, c)``, ``(B, dim)``) into ``(h, c)``."""
        i, f_l, f_r, o, g = self.gates(torch.cat([left[0], right[0]], dim=-1)).chunk(5, dim=-1)
        c = (
            torch.sigmoid(f_l) * left[1]
            + torch.sigmoid(f_r) * right[1]
            + torch.sigmoid(i) * torch.tanh(g)
        )
        return torch.sigmoid(o) * torch.tanh(c), c


class StackLSTM(nn.Module):
    """A stack of LSTM cells taking one step at a time: ``(input, state) -> state``.

    The state is ``(h, c)``, each ``(B, layers, hidden_dim)``: the RNNG keeps one per stack
    depth and continues from whichever is on top.

    Args:
        input_dim: Input size.
        hidden_dim: State size.
        layers: Stacked cells.
        dropout: Dropout between cells (training only).
    """

    def __init__(
        self, *, input_dim: int = 256, hidden_dim: int = 256, layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList(
            nn.LSTMCell(input_dim if k == 0 else hidden_dim, hidden_dim) for k in range(layers)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step from ``state`` (``(h, c)``, each ``(B, layers, H)``) on input ``x``
        ``(B, input_dim)``; returns the new state."""
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            h, c = cell(x if k == 0 else self.drop(x), (state[0][:, k], state[1][:, k]))
            hs.append(h)
            cs.append(c)
            x = h
        return torch.stack(hs, dim=1), torch.stack(cs, dim=1)


class _Schedule(NamedTuple):
    """What the actions alone determine, per row and step (all ``(B, T)``)."""

    active: Tensor  # bool: the step is one of the row's actions
    shift: Tensor  # bool: an active SHIFT
    reduce: Tensor  # bool: an active REDUCE
    depth: Tensor  # long: subtrees on the stack before the step
    word: Tensor  # long: words shifted before the step (the next word's position)
    free: Tensor  # bool: an active step where both actions were possible


def _schedule(actions: Tensor, steps: Tensor, words: Tensor) -> _Schedule:
    """The stack depths and word positions of well-formed action sequences.

    Args:
        actions: ``(B, T)`` SHIFT/REDUCE, then PAD_ACTION.
        steps: ``(B,)`` actions of each row.
        words: ``(B,)`` words each row generates.
    """
    t = torch.arange(actions.shape[1], device=actions.device)
    active = t < steps[:, None]
    shift = active & (actions == SHIFT)
    reduce = active & (actions == REDUCE)
    delta = shift.long() - reduce.long()
    depth = delta.cumsum(1) - delta
    word = shift.long().cumsum(1) - shift.long()
    free = active & (depth >= 2) & (word < words[:, None])
    return _Schedule(active, shift, reduce, depth, word, free)


class RNNG(SavedByConfig, nn.Module):
    """Generative RNNG ``p(x, z)`` over sentences and unlabeled binary trees (see the module
    docstring); token ids in, ``log p`` out, differentiable in every parameter.

    Args:
        vocab_size: Number of token ids (the caller maps unknown words to ``<unk>``).
        embed_dim: Word embedding size, also the size of subtree states (TreeLSTM) and of the
            stack LSTM's input.
        hidden_dim: Stack LSTM size.
        layers: Stacked LSTM cells in the stack LSTM (URNNG: 2).
        dropout: Dropout on word embeddings, between LSTM cells and before the output layers
            (training only; URNNG: 0.5).
        pad_id: Padding id, never predicted (its embedding stays zero).
        eos_id: ``</s>``: generated after each sentence's tree (see the module docstring);
            ``None``: no end of sentence, ``p(x, z | n)``.
        tie_weights: Share the word embeddings with the word predictor's output layer (as
            URNNG does; needs ``embed_dim == hidden_dim``).
    """

    model_type: ClassVar[str] = "rnng"

    def __init__(
        self,
        *,
        vocab_size: int = 10_000,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        eos_id: int | None = 3,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        check_token_settings(
            "RNNG",
            vocab_size=vocab_size,
            pad_id=pad_id,
            eos_id=eos_id,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            layers=layers,
            dropout=dropout,
            tie_weights=tie_weights,
        )
        self.vocab_size, self.embed_dim, self.hidden_dim = vocab_size, embed_dim, hidden_dim
        self.layers, self.dropout, self.tie_weights = layers, float(dropout), bool(tie_weights)
        self.pad_id, self.eos_id = pad_id, eos_id
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.start = nn.Parameter(torch.randn(embed_dim) * 0.1)  # the stack LSTM's first input
        self.drop = nn.Dropout(dropout)
        self.stack_lstm = StackLSTM(
            input_dim=embed_dim, hidden_dim=hidden_dim, layers=layers, dropout=dropout
        )
        self.compose = TreeLSTMComposition(dim=embed_dim)
        self.action_head = nn.Linear(hidden_dim, 1)  # logit of REDUCE
        # tied: the embedding matrix is the output layer's weight (one tensor in the state dict)
        self.word_head = None if tie_weights else nn.Linear(hidden_dim, vocab_size)
        self.word_bias = nn.Parameter(torch.zeros(vocab_size)) if tie_weights else None
        ids = torch.arange(vocab_size)
        self.register_buffer("pad_mask", ids == pad_id, persistent=False)
        self.register_buffer(
            "eos_mask", ids == (-1 if eos_id is None else eos_id), persistent=False
        )

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "layers": self.layers,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
            "tie_weights": self.tie_weights,
        }

    def predicted_tokens(self, lengths: Tensor) -> Tensor:
        """Tokens each sentence's ``log p`` predicts (its words, and ``</s>`` with ``eos_id``):
        the denominator of a perplexity."""
        return lengths + (self.eos_id is not None)

    def _checked(
        self, tokens: Tensor, actions: Tensor, lengths: Tensor | Sequence[int] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        check_tokens("RNNG", tokens, self.vocab_size)
        batch, n = tokens.shape
        lengths = as_lengths(lengths, batch=batch, n=n, device=tokens.device, who="RNNG")
        if not isinstance(actions, Tensor) or actions.shape != (batch, 2 * n - 1):
            shape = tuple(actions.shape) if isinstance(actions, Tensor) else type(actions).__name__
            raise ValueError(
                f"RNNG: actions must have shape ({batch}, {2 * n - 1}) (2N - 1 for tokens of "
                f"width N = {n}, as indicators_to_actions gives), got {shape}"
            )
        actions = actions.to(tokens.device).long()
        check_words("RNNG", tokens, lengths, pad_id=self.pad_id, eos_id=self.eos_id)
        steps = 2 * lengths - 1
        t = torch.arange(2 * n - 1, device=tokens.device)
        inside = t < steps[:, None]
        delta = (actions == SHIFT).long() - (actions == REDUCE).long()
        after = (delta * inside).cumsum(1)  # subtrees on the stack after each step
        bad = (
            (inside & (actions != SHIFT) & (actions != REDUCE))
            | (~inside & (actions != PAD_ACTION))
            | (inside & (after < 1))
        ).any(1) | (after[:, -1] != 1)
        if bool(bad.any()):
            b = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"RNNG: row {b} ({int(lengths[b])} words) does not hold the SHIFT/REDUCE actions "
                f"of one binary tree followed by PAD_ACTION ({PAD_ACTION}): "
                f"{actions[b].tolist()}"
            )
        return tokens.long(), actions, lengths

    def forward(
        self, tokens: Tensor, actions: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> RNNGOutput:
        """``log p(x, z)`` of each sentence and its tree.

        Args:
            tokens: ``(B, N)`` word ids (no ``<s>`` or ``</s>``), padded after each sentence.
            actions: ``(B, 2N - 1)`` each tree's SHIFT/REDUCE actions, then
                :data:`~seqae.tree.trees.PAD_ACTION` (:func:`~seqae.tree.trees.indicators_to_actions`).
            lengths: ``(B,)`` sentence lengths in ``1..N``; ``None``: all ``N``.

        Raises:
            ValueError: Bad shapes, ids out of range, or actions that do not build one binary
                tree over each sentence's words.
        """
        tokens, actions, lengths = self._checked(tokens, actions, lengths)
        words = lengths
        if self.eos_id is not None:  # one more SHIFT: </s>, once the tree is complete
            tokens = append_eos(tokens, lengths, self.eos_id, self.pad_id)
            actions = torch.cat([actions, actions.new_full((actions.shape[0], 1), PAD_ACTION)], 1)
            actions = actions.scatter(1, (2 * lengths - 1)[:, None], SHIFT)
            words = lengths + 1
        plan = _schedule(actions, 2 * lengths - 1 + (self.eos_id is not None), words)
        contexts = self._contexts(tokens, actions.shape[1], plan)  # (B, T, H)
        contexts = self.drop(contexts)

        # actions: log p(REDUCE) = logsigmoid(l), log p(SHIFT) = logsigmoid(-l)
        logit = self.action_head(contexts).squeeze(-1)  # (B, T)
        sign = torch.where(plan.reduce, 1.0, -1.0).to(logit.dtype)
        action_lp = (F.logsigmoid(sign * logit) * plan.free).sum(1)

        # words: the context of the j-th SHIFT predicts word j
        batch, width = tokens.shape
        rows = torch.arange(batch, device=tokens.device)[:, None]
        t = torch.arange(actions.shape[1], device=tokens.device).expand(batch, -1)
        at = torch.full((batch, width + 1), 0, dtype=torch.long, device=tokens.device)
        at = at.scatter(1, torch.where(plan.shift, plan.word, width), t)[:, :width]  # (B, W)
        logits = self.word_logits(contexts[rows, at])  # (B, W, V)
        banned = self.pad_mask  # (V,): never predicted
        if self.eos_id is not None:  # </s> only over one finished tree
            one_tree = plan.depth.gather(1, at) == 1  # (B, W)
            banned = banned | (self.eos_mask & ~one_tree[..., None])  # (B, W, V)
        logits = logits.masked_fill(banned, float("-inf"))
        word_lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens[..., None]).squeeze(-1)
        real = torch.arange(width, device=tokens.device) < words[:, None]
        word_lp = torch.where(real, word_lp, 0.0).sum(1)
        return RNNGOutput(word_lp + action_lp, word_lp, action_lp)

    def _contexts(self, tokens: Tensor, steps: int, plan: _Schedule) -> Tensor:
        """The stack LSTM's top-layer output before each step, ``(B, T, H)``."""
        batch, width = tokens.shape
        device = tokens.device
        rows = torch.arange(batch, device=device)
        emb = self.drop(self.embed(tokens))  # (B, W, E)
        depth_max = width + 1
        # subtree (h, c) at each stack depth; stack-LSTM state after 0..depth subtrees
        tree_h = emb.new_zeros(batch, depth_max, self.embed_dim)
        tree_c = torch.zeros_like(tree_h)
        zero = emb.new_zeros(batch, self.layers, self.hidden_dim)
        h0, c0 = self.stack_lstm(self.start.expand(batch, -1), (zero, zero))
        state_h = torch.stack([h0] + [zero] * depth_max, dim=1)  # (B, D + 1, L, H)
        state_c = torch.stack([c0] + [zero] * depth_max, dim=1)
        contexts = []
        for t in range(steps):
            depth = plan.depth[:, t]
            contexts.append(state_h[rows, depth, -1])
            shift, active = plan.shift[:, t], plan.active[:, t]
            left, right = (depth - 2).clamp(min=0), (depth - 1).clamp(min=0)
            comp_h, comp_c = self.compose(
                (tree_h[rows, left], tree_c[rows, left]), (tree_h[rows, right], tree_c[rows, right])
            )
            word = emb[rows, plan.word[:, t].clamp(max=width - 1)]
            new_h = torch.where(shift[:, None], word, comp_h)
            new_c = torch.where(shift[:, None], 0.0, comp_c)
            slot = torch.where(shift, depth, left)  # where the new subtree goes
            keep = ~active[:, None]
            tree_h = tree_h.index_put((rows, slot), torch.where(keep, tree_h[rows, slot], new_h))
            tree_c = tree_c.index_put((rows, slot), torch.where(keep, tree_c[rows, slot], new_c))
            s_h, s_c = self.stack_lstm(new_h, (state_h[rows, slot], state_c[rows, slot]))
            up = keep[:, :, None]
            state_h = state_h.index_put(
                (rows, slot + 1), torch.where(up, state_h[rows, slot + 1], s_h)
            )
            state_c = state_c.index_put(
                (rows, slot + 1), torch.where(up, state_c[rows, slot + 1], s_c)
            )
        return torch.stack(contexts, dim=1)

    def word_logits(self, contexts: Tensor) -> Tensor:
        """Unnormalised word scores ``(..., V)`` from stack summaries ``(..., H)``."""
        if self.word_head is None:
            return F.linear(contexts, self.embed.weight, self.word_bias)
        return self.word_head(contexts)

    def log_prob(
        self, tokens: Tensor, actions: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> Tensor:
        """``log p(x, z)``, ``(B,)``; arguments as :meth:`forward`."""
        return self(tokens, actions, lengths).log_prob

    def extra_repr(self) -> str:
        return f"eos_id={self.eos_id}, tie_weights={self.tie_weights}"
