"""A discriminator that scores every prefix of a sentence as written by people or generated.

Wang & Lee 2018 ("Learning to encode text as human-readable summaries using generative
adversarial networks", arXiv 1810.02851) keep a generated summary readable with a
discriminator trained on human-written sentences. Scoring only whole sentences gives the
generator one reward per summary; scoring every prefix ``y_1..y_t`` gives one per word, so a
word that turns a fluent start into nonsense is blamed where it happens.

:class:`PrefixDiscriminator` is an embedding, a unidirectional GRU or LSTM (its output at ``t``
sees only the words ``<= t``) and a linear head: ``logit_t = w . h_t + b``, ``D_t =
sigmoid(logit_t)`` is the probability that the prefix up to ``t`` was written by a person. It is trained with the
logistic (binary cross-entropy) loss over the valid positions of real and generated sentences,
and gives the generator per-word rewards (:meth:`PrefixDiscriminator.token_rewards`):

    >>> disc = PrefixDiscriminator(vocab_size=tok.vocab_size)
    >>> loss = disc.loss(real_ids, real_lengths, fake_ids.detach(), fake_lengths)
    >>> rewards = disc.token_rewards(fake_ids, fake_lengths)   # (B, T), no gradient
    >>> disc.save_pretrained("runs/summary/discriminator")

Summaries may hold words copied from their article that the vocabulary lacks (extended ids
``>= vocab_size``, see :meth:`seqae.text.tokenizer.WordTokenizer.extend`). The discriminator
reads them as ``<unk>``: it judges how the summary reads, and every copied rare word reads the
same to it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from seqae.core.losses import gan_discriminator_loss
from seqae.core.saving import SavedByConfig
from seqae.text.seq2seq import check_cell, embed_soft

__all__ = ["PrefixDiscriminator", "RewardForm"]

#: How discriminator probabilities become per-word rewards (see ``token_rewards``).
RewardForm = Literal["centered", "log"]
_FORMS = ("centered", "log")


def _valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """``(B, T)`` bool: position ``t`` of row ``b`` is valid when ``t < lengths[b]``."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class PrefixDiscriminator(SavedByConfig, nn.Module):
    """Per-prefix real/generated scores of token sequences: embedding -> GRU (or LSTM) -> linear.

    Args:
        vocab_size: Size of the (non-extended) vocabulary; ids from ``vocab_size`` on (a
            pointer-generator's copied words) are read as ``unk_id``.
        embedding_dim: Word embedding size.
        hidden_size: RNN state size.
        num_layers: Stacked RNN layers.
        dropout: Dropout on the embeddings, between RNN layers and before the head (training
            only; rewards are computed in eval mode).
        pad_id: Id of ``<pad>`` (its embedding is kept at zero).
        unk_id: Id of ``<unk>``, which extended ids are mapped to.
        cell: The recurrent cell, ``"gru"`` (the default) or ``"lstm"`` (both read left to
            right only, so each logit still sees only its prefix).
    """

    model_type: ClassVar[str] = "summary_discriminator"

    def __init__(
        self,
        *,
        vocab_size: int = 30_000,
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 1,
        cell: str = "gru",
    ) -> None:
        super().__init__()
        check_cell("PrefixDiscriminator", cell)
        for name, value in (
            ("vocab_size", vocab_size),
            ("embedding_dim", embedding_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"PrefixDiscriminator: {name} must be a positive int, got {value!r}"
                )
        for name, value in (("pad_id", pad_id), ("unk_id", unk_id)):
            if not isinstance(value, int) or not 0 <= value < vocab_size:
                raise ValueError(
                    f"PrefixDiscriminator: {name} must be an id below vocab_size ({vocab_size}), "
                    f"got {value!r}"
                )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"PrefixDiscriminator: dropout must be in [0, 1), got {dropout!r}")
        self.vocab_size, self.embedding_dim, self.hidden_size = (
            vocab_size,
            embedding_dim,
            hidden_size,
        )
        self.num_layers, self.dropout_p, self.pad_id, self.unk_id = (
            num_layers,
            dropout,
            pad_id,
            unk_id,
        )
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.cell = cell
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, 1)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout_p,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "cell": self.cell,
        }

    def _checked(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (B, T), got shape {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"ids must be an integer tensor, got {ids.dtype}")
        if lengths.shape != ids.shape[:1]:
            raise ValueError(
                f"lengths must be (B,) = ({ids.shape[0]},), got shape {tuple(lengths.shape)}"
            )
        if ids.numel() and int(ids.min()) < 0:
            raise ValueError(f"ids must be >= 0, got {int(ids.min())}")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > ids.shape[1]):
            raise ValueError(
                f"lengths must lie in [0, T = {ids.shape[1]}], got "
                f"[{int(lengths.min())}, {int(lengths.max())}]"
            )
        return ids, lengths.to(ids.device)

    def forward(self, ids: Tensor, lengths: Tensor, *, soft: Tensor | None = None) -> Tensor:
        """Logit of "written by a person" for every prefix.

        Args:
            ids: ``(B, T)`` token ids; extended ids (``>= vocab_size``) are read as ``<unk>``.
            lengths: ``(B,)`` number of valid tokens of each row.
            soft: ``(B, T, V + k)`` relaxed one-hots of ``ids`` to read instead (the
                generator's ``gumbel_sample``), so the logits have a gradient for the writer.

        Returns:
            ``(B, T)`` logits; ``logits[b, t]`` depends on ``ids[b, :t + 1]`` only. Positions
            ``t >= lengths[b]`` are 0.
        """
        ids, lengths = self._checked(ids, lengths)
        ids = ids.masked_fill(ids >= self.vocab_size, self.unk_id)
        x = self.embedding(ids) if soft is None else embed_soft(self.embedding, soft, self.unk_id)
        h, _ = self.rnn(self.dropout(x))
        logits = self.head(self.dropout(h)).squeeze(-1)
        return logits.masked_fill(~_valid_mask(lengths, ids.shape[1]), 0.0)

    def loss(
        self, real_ids: Tensor, real_lengths: Tensor, fake_ids: Tensor, fake_lengths: Tensor
    ) -> Tensor:
        """Binary cross-entropy over the valid positions of both batches.

        ``L = mean_{real (b,t)} -log D_t + mean_{fake (b,t)} -log(1 - D_t)``: each term is
        averaged over its own valid tokens (:func:`seqae.core.losses.gan_discriminator_loss`,
        ``kind="nonsaturating"``). Detach the generator's samples; ids carry no gradient anyway.

        Args:
            real_ids: ``(B, T)`` human-written sentences.
            real_lengths: ``(B,)`` their lengths.
            fake_ids: ``(B', T')`` generated summaries.
            fake_lengths: ``(B',)`` their lengths.
        """
        real = self(real_ids, real_lengths)[
            _valid_mask(real_lengths.to(real_ids.device), real_ids.shape[1])
        ]
        fake = self(fake_ids, fake_lengths)[
            _valid_mask(fake_lengths.to(fake_ids.device), fake_ids.shape[1])
        ]
        if real.numel() == 0 or fake.numel() == 0:
            raise ValueError(
                "PrefixDiscriminator.loss: a batch has no valid tokens (all lengths 0)"
            )
        return gan_discriminator_loss(real, fake, kind="nonsaturating")

    def generator_loss(self, ids: Tensor, lengths: Tensor, soft: Tensor) -> Tensor:
        """The writer's non-saturating adversarial loss ``mean -log D`` over the valid prefixes
        of relaxed summaries (straight-through Gumbel-softmax training), differentiable with
        respect to ``soft`` only: the discriminator's own weights get no gradient from it.

        Args:
            ids: ``(B, T)`` the sampled ids.
            lengths: ``(B,)`` their lengths.
            soft: ``(B, T, V + k)`` their straight-through one-hots.
        """
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        logits = torch.func.functional_call(self, frozen, (ids, lengths), {"soft": soft})
        valid = _valid_mask(lengths.to(ids.device), ids.shape[1])
        if not bool(valid.any()):
            raise ValueError("PrefixDiscriminator.generator_loss: no valid tokens (lengths 0)")
        return nn.functional.softplus(-logits[valid]).mean()  # -log sigmoid(logit)

    @torch.no_grad()
    def token_rewards(
        self, ids: Tensor, lengths: Tensor, *, form: RewardForm = "centered"
    ) -> Tensor:
        """Per-word rewards for a generator, in eval mode and without gradient.

        Args:
            ids: ``(B, T)`` generated ids (extended ids allowed).
            lengths: ``(B,)`` their lengths.
            form: ``"centered"`` (default): ``r_t = D_t - 1/2`` in ``[-1/2, 1/2]``: zero when the
                discriminator cannot tell, so a longer summary is neither rewarded nor
                punished for its length as such, and bounded, which keeps the REINFORCE
                variance low. ``"log"``: ``r_t = log D_t <= 0``, the per-token non-saturating
                generator loss ``-log D`` (Goodfellow et al. 2014) as a reward; every word
                costs something, so it also pushes towards shorter summaries.

        Returns:
            ``(B, T)`` rewards, 0 at positions ``t >= lengths[b]``.
        """
        if form not in _FORMS:
            raise ValueError(f"unknown reward form {form!r}; expected one of {', '.join(_FORMS)}")
        was = self.training
        self.eval()
        try:
            logits = self(ids, lengths)
        finally:
            self.train(was)
        rewards = (
            torch.sigmoid(logits) - 0.5 if form == "centered" else nn.functional.logsigmoid(logits)
        )
        return rewards.masked_fill(~_valid_mask(lengths.to(ids.device), ids.shape[1]), 0.0)

    @torch.no_grad()
    def accuracy(
        self,
        real_ids: Tensor,
        real_lengths: Tensor,
        fake_ids: Tensor,
        fake_lengths: Tensor,
        *,
        last_only: bool = False,
    ) -> float:
        """Fraction of positions classified right (logit > 0 for real, < 0 for generated), in
        eval mode.

        Args:
            real_ids, real_lengths, fake_ids, fake_lengths: As for :meth:`loss`.
            last_only: Score only each sentence's last valid position (the whole sentence)
                instead of every prefix; rows of length 0 are skipped.
        """
        was = self.training
        self.eval()
        try:
            parts = []
            for ids, lengths, real in (
                (real_ids, real_lengths, True),
                (fake_ids, fake_lengths, False),
            ):
                lengths = lengths.to(ids.device)
                logits = self(ids, lengths)
                if last_only:
                    keep = lengths > 0
                    picked = logits[keep].gather(1, (lengths[keep] - 1).unsqueeze(1)).squeeze(1)
                else:
                    picked = logits[_valid_mask(lengths, ids.shape[1])]
                parts.append(picked > 0 if real else picked < 0)
        finally:
            self.train(was)
        right = torch.cat(parts)
        if right.numel() == 0:
            raise ValueError("PrefixDiscriminator.accuracy: no valid tokens to score")
        return float(right.float().mean())
