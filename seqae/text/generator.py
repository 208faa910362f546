"""The summary generator: a pointer-generator network (See et al. 2017, "Get to the point",
arXiv 1704.04368) that writes a short summary of an article.

An attentive GRU encoder-decoder (:mod:`seqae.text.seq2seq`) gives, at each step, a softmax
over the vocabulary and attention over the article; a switch ``p_gen = sigmoid(w . [s_t; c_t;
x_t] + b)`` mixes them into one distribution over the *extended* vocabulary (the vocabulary,
then each article's out-of-vocabulary words, see :meth:`WordTokenizer.extend`), so a summary
can copy an article's rare and unseen words. ``<pad>`` and ``<s>`` are never generated.

    >>> gen = PointerGenerator(vocab_size=tok.vocab_size)
    >>> src = tok.extend_batch(article_words)                       # ExtendedBatch
    >>> tgt = tok.extend_targets(summary_words, src.oov_words)      # words + </s>
    >>> log_probs = gen(src, tgt.extended_ids)                      # (B, T, V + max_oovs)
    >>> loss = token_cross_entropy(log_probs, tgt.extended_ids, pad_id=tok.pad_id)
    >>> s = gen.sample(src, max_words=20)        # ids, log_probs (grad), entropy, lengths, mask
    >>> loss = reinforce_loss(s.log_probs, reward, mask=s.mask)
    >>> gen.greedy(src, max_words=20); gen.beam(src, max_words=20, beam_size=4)

Length limit: a summary holds at most ``max_words`` words; the ``</s>`` that ends it is kept
when the decoder writes it within ``max_words + 1`` steps, otherwise the summary is cut after
``max_words`` words (no ``</s>``; the token drawn at that last step is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from seqae.core.saving import SavedByConfig
from seqae.text.backbones import build_pointer_layers
from seqae.text.seq2seq import (
    DecoderState,
    Memory,
    State,
    entropy_of,
    in_vocab,
    init_token_model,
    lengths_mask,
    masked_log,
    pointer_distribution,
    select_memory,
    select_state,
    stack_steps,
)
from seqae.text.tokenizer import ExtendedBatch

__all__ = ["PointerGenerator", "Sampled", "Decoded", "repeated_ngram_ban"]


def repeated_ngram_ban(history: Tensor, n: int, width: int) -> Tensor:
    """Which next tokens would repeat an ``n``-gram that ``history`` already holds.

    ``n = 1``: every token written so far; ``n = 2``: each token that once followed the last
    token; and so on (the decoding constraint of Paulus et al. 2017, arXiv 1705.04304).

    Args:
        history: ``(B, t)`` the tokens written so far.
        n: The n-gram size (>= 1).
        width: The size of the (extended) vocabulary.

    Returns:
        ``(B, width)`` True where writing the token would repeat an ``n``-gram.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    b, t = history.shape
    ban = torch.zeros(b, width, dtype=torch.bool, device=history.device)
    rows = torch.arange(b, device=history.device)
    tail = history[:, t - n + 1 :] if n > 1 else history[:, :0]  # the n-1 latest tokens
    for j in range(t - n + 1):  # each earlier n-gram history[j : j + n]
        same_start = (history[:, j : j + n - 1] == tail).all(dim=1)  # (B,)
        ban[rows, history[:, j + n - 1]] |= same_start
    return ban


class Sampled(NamedTuple):
    """Summaries sampled for REINFORCE (a :class:`~seqae.text.seq2seq.Source`)."""

    #: ``(B, S)`` extended ids, padded with ``<pad>``.
    ids: Tensor
    #: ``(B, S)`` log-probability of each sampled token (with gradient; 0 at padding).
    log_probs: Tensor
    #: ``(B, S)`` entropy of each step's distribution (with gradient; 0 at padding).
    entropy: Tensor
    #: ``(B,)`` tokens of each summary, its ``</s>`` included.
    lengths: Tensor
    #: ``(B, S)`` True at real tokens.
    mask: Tensor
    #: The batch's extended ids beyond the vocabulary (from the articles).
    max_oovs: int
    #: ``(B, S, V + max_oovs)`` straight-through Gumbel-softmax one-hots of the tokens
    #: (:meth:`PointerGenerator.gumbel_sample`; ``None`` from :meth:`~PointerGenerator.sample`):
    #: exactly ``one_hot(ids)`` forward (0 at padding), the relaxed sample's gradient backward.
    soft: Tensor | None = None


class Decoded(NamedTuple):
    """Summaries from greedy or beam decoding (a :class:`~seqae.text.seq2seq.Source`)."""

    #: ``(B, S)`` extended ids, padded with ``<pad>``.
    ids: Tensor
    #: ``(B,)`` tokens of each summary, its ``</s>`` included.
    lengths: Tensor
    #: ``(B, S)`` True at real tokens.
    mask: Tensor
    #: ``(B,)`` the summary's total log-probability.
    log_prob: Tensor
    #: The batch's extended ids beyond the vocabulary (from the articles).
    max_oovs: int


class PointerGenerator(SavedByConfig, nn.Module):
    """Article -> summary, with copying of article words (See et al. 2017).

    Args:
        vocab_size: The tokenizer's vocabulary size (extended ids start there).
        emb_dim: Word embedding size (shared by encoder and decoder; ``backbone="rnn"``).
        hidden: RNN size ``H`` (``backbone="rnn"``).
        layers: RNN layers of the encoder and of the decoder (``backbone="rnn"``).
        dropout: Dropout on embeddings, between RNN layers (a transformer's own dropout), and
            on the output features.
        pad_id: ``<pad>`` (never generated).
        unk_id: ``<unk>`` (the decoder's input for a copied out-of-vocabulary word).
        bos_id: ``<s>``, the decoder's first input (never generated).
        eos_id: ``</s>``, which ends a summary.
        backbone: ``"rnn"`` (the default; fast on a CPU), ``"bart"`` or ``"t5"`` (a
            ``transformers`` encoder-decoder, see :mod:`seqae.text.backbones`).
        cell: ``"gru"`` (the default) or ``"lstm"`` (``backbone="rnn"``).
        backbone_size: A transformer's sizes: some of ``d_model``, ``layers``, ``heads``,
            ``ffn``, ``max_positions`` (:data:`~seqae.text.backbones.SIZE_DEFAULTS`).
        backbone_config: A transformer's whole ``transformers`` config, as :attr:`config`
            records it.
        pretrained: A local BART or T5 folder (``transformers`` ``save_pretrained``) whose
            weights the model starts from; its vocabulary size and special ids must be the
            tokenizer's. Nothing downloads; :attr:`config` records the architecture, not the
            folder. At most one of ``backbone_size``, ``backbone_config``, ``pretrained``.
    """

    model_type: ClassVar[str] = "summary_generator"

    def __init__(
        self,
        *,
        vocab_size: int = 30_000,
        emb_dim: int = 128,
        hidden: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 1,
        bos_id: int = 2,
        eos_id: int = 3,
        backbone: str = "rnn",
        cell: str = "gru",
        backbone_size: Mapping[str, int] | None = None,
        backbone_config: Mapping[str, Any] | None = None,
        pretrained: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        init_token_model(
            self,
            "PointerGenerator",
            vocab_size=vocab_size,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            unk_id=unk_id,
            bos_id=bos_id,
            eos_id=eos_id,
        )
        # the core, P_vocab over its features and p_gen over [s_t; c_t; x_t]
        self.core, self.out, self.switch = build_pointer_layers(
            "PointerGenerator",
            copy=True,
            vocab_size=vocab_size,
            backbone=backbone,
            cell=cell,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            bos_id=bos_id,
            eos_id=eos_id,
            backbone_size=backbone_size,
            backbone_config=backbone_config,
            pretrained=pretrained,
        )

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "vocab_size": self.vocab_size,
            "dropout": self.dropout,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            **self.core.config,  # backbone, and its cell and sizes or transformers config
        }

    # -- one step ------------------------------------------------------------------------------

    def _encode(self, batch: ExtendedBatch) -> tuple[Memory, State]:
        ids = in_vocab(batch.extended_ids, self.vocab_size, self.unk_id)  # (B, T)
        return self.core.encode(ids, batch.lengths.to(ids.device))

    def _next(
        self,
        prev: Tensor,
        state: DecoderState,
        memory: Memory,
        source_ids: Tensor,
        max_oovs: int,
    ) -> tuple[Tensor, DecoderState, Tensor]:
        """``prev (B,)`` extended ids -> ``(probs (B, V + max_oovs), state, p_gen (B, 1))``."""
        step = self.core.step(in_vocab(prev, self.vocab_size, self.unk_id), state, memory)
        probs, p_gen = pointer_distribution(
            self.out, self.switch, self.never, step, source_ids, max_oovs
        )
        return probs, step.state, p_gen

    def _banned(self, probs: Tensor, history: Tensor, n: int) -> Tensor:
        """``probs (B, V')`` renormalised without the tokens that would repeat an ``n``-gram
        of ``history (B, t)`` (:func:`repeated_ngram_ban`); ``</s>`` is never banned."""
        ban = repeated_ngram_ban(history, n, probs.shape[-1])
        ban[:, self.eos_id] = False
        probs = probs.masked_fill(ban, 0.0)
        return probs / probs.sum(dim=-1, keepdim=True).clamp(min=1e-30)

    # -- teacher forcing -----------------------------------------------------------------------

    def forward(self, batch: ExtendedBatch, targets: Tensor) -> Tensor:
        """Teacher-forced log-probabilities of the next token.

        Args:
            batch: The articles (:meth:`WordTokenizer.extend_batch`).
            targets: ``(B, S)`` the summaries' extended ids *without* ``<s>``, ending with
                ``</s>``, padded (``extend_targets(...).extended_ids``). The decoder reads
                ``<s>`` then ``targets[:, :-1]``.

        Returns:
            ``(B, S, V + max_oovs)`` log-probabilities (floored at ``log(1e-30)``, so a loss on
            them is finite): ``token_cross_entropy(out, targets, pad_id=pad_id)`` or
            ``out.gather(-1, targets[..., None])`` give the NLL.
        """
        memory, state = self._encode(batch)
        source = batch.extended_ids.to(targets.device)
        bos = targets.new_full((targets.shape[0], 1), self.bos_id)
        inputs = in_vocab(torch.cat([bos, targets[:, :-1]], dim=1), self.vocab_size, self.unk_id)
        # the decoder reads the summary token by token; the output layer and the copy mixture
        # then run once over all positions
        steps = stack_steps(list(self.core.teacher_forced(inputs, state, memory)))
        probs, _ = pointer_distribution(
            self.out, self.switch, self.never, steps, source, batch.max_oovs
        )
        return masked_log(probs)  # (B, S, V + max_oovs)

    # -- decoding ------------------------------------------------------------------------------

    def _decode(
        self,
        batch: ExtendedBatch,
        max_words: int,
        temperature: float,
        pick: Callable[[Tensor], Tensor],
        gumbel_tau: float | None = None,
        no_repeat_ngram: int = 0,
    ) -> Sampled:
        """Decode token by token, choosing each with ``pick(probs (B, V')) -> (B,)``, or, with
        ``gumbel_tau``, by the Gumbel-max trick, keeping straight-through relaxed one-hots;
        ``no_repeat_ngram > 0`` bans repeated n-grams (:meth:`_banned`)."""
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        _check_no_repeat(no_repeat_ngram)
        memory, state = self._encode(batch)
        source = batch.extended_ids.to(memory.states.device)
        b = source.shape[0]
        prev = source.new_full((b,), self.bos_id)
        finished = torch.zeros(b, dtype=torch.bool, device=source.device)
        ids, log_probs, entropies, keeps, softs = [], [], [], [], []
        for t in range(max_words + 1):
            probs, state, _ = self._next(prev, state, memory, source, batch.max_oovs)
            if no_repeat_ngram and ids:
                probs = self._banned(probs, torch.stack(ids, dim=1), no_repeat_ngram)
            if temperature != 1.0:
                probs = torch.softmax(masked_log(probs) / temperature, dim=-1)
            if gumbel_tau is None:
                token = pick(probs)  # (B,)
            else:  # argmax of log p + Gumbel noise is a sample of p; its softmax is relaxed
                uniform = torch.rand_like(probs).clamp(min=1e-10, max=1.0 - 1e-7)
                scores = masked_log(probs) - torch.log(-torch.log(uniform))
                token = scores.argmax(dim=-1)
                relaxed = torch.softmax(scores / gumbel_tau, dim=-1)
                hard = nn.functional.one_hot(token, probs.shape[-1]).to(relaxed.dtype)
                soft = hard - relaxed.detach() + relaxed  # straight-through
            is_eos = token == self.eos_id
            keep = ~finished & (is_eos | (t < max_words))  # the last step keeps only </s>
            if gumbel_tau is not None:
                softs.append(soft * keep[:, None])
            ids.append(token.masked_fill(~keep, self.pad_id))
            log_probs.append(masked_log(probs).gather(1, token[:, None]).squeeze(1) * keep)
            entropies.append(entropy_of(probs) * keep)
            keeps.append(keep)
            finished = finished | is_eos
            if bool(finished.all()):
                break
            prev = token
        lengths = torch.stack(keeps, dim=1).sum(dim=1)  # (B,)
        width = int(lengths.max())
        return Sampled(
            ids=torch.stack(ids, dim=1)[:, :width],  # (B, S)
            log_probs=torch.stack(log_probs, dim=1)[:, :width],
            entropy=torch.stack(entropies, dim=1)[:, :width],
            lengths=lengths,
            mask=lengths_mask(lengths, width),
            max_oovs=batch.max_oovs,
            soft=torch.stack(softs, dim=1)[:, :width] if softs else None,
        )

    def gumbel_sample(
        self, batch: ExtendedBatch, *, max_words: int, tau: float = 1.0, no_repeat_ngram: int = 0
    ) -> Sampled:
        """Sample one summary per article with a straight-through Gumbel-softmax (Jang et al.
        2017; SEQ^3, Baziotis et al. 2019, arXiv 1904.03651): the tokens are samples of the
        model's distribution (the Gumbel-max trick), and :attr:`Sampled.soft` carries their
        one-hots with the gradient of the relaxed sample ``softmax((log p + g) / tau)``, so
        models that read ``soft`` (the reconstructor, the discriminator) pass gradients back to
        the generator without REINFORCE. The decoder reads each sampled token itself (no
        gradient through the next step's input).

        Args:
            batch: The articles.
            max_words: At most this many words per summary.
            tau: The relaxation's temperature (> 0): lower is closer to one-hot, with
                higher-variance gradients.
            no_repeat_ngram: As in :meth:`sample`: the banned tokens get no probability, so
                neither the sample nor its relaxation puts weight on them.
        """
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        return self._decode(
            batch,
            max_words,
            1.0,
            lambda p: p.argmax(-1),
            gumbel_tau=tau,
            no_repeat_ngram=no_repeat_ngram,
        )

    def sample(
        self,
        batch: ExtendedBatch,
        *,
        max_words: int,
        temperature: float = 1.0,
        no_repeat_ngram: int = 0,
    ) -> Sampled:
        """Sample one summary per article (with gradient, for REINFORCE).

        Args:
            batch: The articles.
            max_words: At most this many words per summary (see the module's length limit).
            temperature: Divides the log-probabilities before sampling; the returned
                ``log_probs`` and ``entropy`` are those of the tempered distribution that was
                sampled (the model's own at 1.0).
            no_repeat_ngram: ``n > 0``: never repeat an n-gram (1: no token twice); the
                distribution sampled, and its ``log_probs``, are the model's renormalised
                over the tokens allowed. 0: no constraint.
        """
        return self._decode(
            batch,
            max_words,
            temperature,
            lambda p: torch.multinomial(p, 1).squeeze(1),
            no_repeat_ngram=no_repeat_ngram,
        )

    @torch.no_grad()
    def greedy(self, batch: ExtendedBatch, *, max_words: int, no_repeat_ngram: int = 0) -> Decoded:
        """The most probable token at each step (no gradient); ``no_repeat_ngram`` as in
        :meth:`sample`."""
        out = self._decode(
            batch, max_words, 1.0, lambda p: p.argmax(dim=-1), no_repeat_ngram=no_repeat_ngram
        )
        return Decoded(out.ids, out.lengths, out.mask, out.log_probs.sum(dim=1), out.max_oovs)

    @torch.no_grad()
    def beam(
        self,
        batch: ExtendedBatch,
        *,
        max_words: int,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        no_repeat_ngram: int = 0,
    ) -> Decoded:
        """Beam search, one article at a time (no gradient).

        At each step the ``2 * beam_size`` best extensions are ranked; one ending in ``</s>``
        among the first ``beam_size`` finishes a hypothesis, the others fill the beam. The
        search stops with ``beam_size`` finished hypotheses (or at the length limit, where each
        running hypothesis ends as greedy decoding would: with ``</s>`` if that is its best
        next token, else cut). The best by ``log p / length ** length_penalty`` wins.
        ``beam_size=1`` is greedy decoding.

        Args:
            batch: The articles.
            max_words: At most this many words per summary.
            beam_size: Hypotheses kept (>= 1).
            length_penalty: Exponent of the length normalisation (0: plain log-probability).
            no_repeat_ngram: As in :meth:`sample` (scores are then the log-probabilities
                renormalised over the tokens allowed).
        """
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        _check_no_repeat(no_repeat_ngram)
        memory, state = self._encode(batch)
        source = batch.extended_ids.to(memory.states.device)
        best = []
        for row in range(source.shape[0]):
            one = torch.tensor([row], device=source.device)
            best.append(
                self._beam_one(
                    select_memory(memory, one),
                    select_state(state, one),
                    source[row : row + 1],
                    batch.max_oovs,
                    max_words,
                    beam_size,
                    length_penalty,
                    no_repeat_ngram,
                )
            )
        lengths = torch.tensor([len(tokens) for tokens, _ in best], device=source.device)
        width = int(lengths.max())
        ids = source.new_full((len(best), width), self.pad_id)
        for row, (tokens, _) in enumerate(best):
            ids[row, : len(tokens)] = torch.tensor(tokens, device=source.device)
        log_prob = torch.tensor([score for _, score in best], device=source.device)
        return Decoded(ids, lengths, lengths_mask(lengths, width), log_prob, batch.max_oovs)

    def _beam_one(
        self,
        memory: Memory,
        state: DecoderState,
        source: Tensor,
        max_oovs: int,
        max_words: int,
        k: int,
        length_penalty: float,
        no_repeat_ngram: int,
    ) -> tuple[list[int], float]:
        """Beam search for one article (``memory`` and ``state`` of batch size 1)."""
        running: list[list[int]] = [[]]
        scores = memory.states.new_zeros(1)  # (n,) log-probabilities of the running hypotheses
        finished: list[tuple[list[int], float]] = []
        for t in range(max_words + 1):
            n = len(running)
            prev = source.new_tensor([toks[-1] if toks else self.bos_id for toks in running])
            mem_n = select_memory(memory, source.new_zeros(n))  # the article, n times
            probs, new_state, _ = self._next(prev, state, mem_n, source.expand(n, -1), max_oovs)
            if no_repeat_ngram and t > 0:
                probs = self._banned(probs, source.new_tensor(running), no_repeat_ngram)
            logp = masked_log(probs)  # (n, V')
            if t == max_words:  # the length limit: end like greedy decoding
                for i, toks in enumerate(running):
                    if int(logp[i].argmax()) == self.eos_id:
                        finished.append(
                            (toks + [self.eos_id], float(scores[i] + logp[i, self.eos_id]))
                        )
                    else:
                        finished.append((toks, float(scores[i])))
                break
            width = logp.shape[1]
            top = (scores[:, None] + logp).view(-1).topk(min(2 * k, n * width))
            keep, next_running, next_scores = [], [], []
            for rank, (value, flat) in enumerate(
                zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ):
                i, token = divmod(flat, width)
                if token == self.eos_id:
                    if rank < k:
                        finished.append((running[i] + [token], value))
                elif len(next_running) < k:
                    keep.append(i)
                    next_running.append(running[i] + [token])
                    next_scores.append(value)
            if len(finished) >= k or not next_running:
                break
            running = next_running
            scores = scores.new_tensor(next_scores)
            state = select_state(new_state, source.new_tensor(keep))
        return max(finished, key=lambda h: h[1] / max(len(h[0]), 1) ** length_penalty)


def _check_no_repeat(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"no_repeat_ngram must be an integer >= 0, got {n!r}")
