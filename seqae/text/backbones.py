"""The encoder-decoder backbones of the text models: the recurrent :class:`AttentionSeq2Seq`
(``backbone="rnn"``, a GRU or an LSTM; fast on a CPU) or a ``transformers`` BART or T5
(:class:`TransformerSeq2Seq`), built from a few size keys or from a local pretrained folder.
Nothing is ever downloaded.

Every core has the same interface, which the generator, the reconstructor and beam search use:

    >>> core = build_core("PointerGenerator", backbone="bart", backbone_size={"d_model": 256},
    ...                   vocab_size=V, pad_id=0, bos_id=2, eos_id=3, ...)
    >>> memory, state = core.encode(ids, lengths)           # Memory, and a State
    >>> step = core.step(prev_ids, state, memory)           # Step(features, attention, inputs, state)
    >>> state = step.state.select(index)                    # beam search (rows, repeats allowed)
    >>> for step in core.teacher_forced(inputs, state, memory): ...  # one causal pass

A transformer core's :class:`Step` is ``features = [s_t; c_t]`` (the decoder's top hidden state
and a context vector), ``attention`` over the source and ``inputs`` (the input token's
embedding), as the recurrent core's. The copy attention is its own single-head scaled
dot-product attention from ``s_t`` over the encoder's output states (:class:`DotAttention`,
Luong et al. 2015's "general" score), not the model's cross-attention averaged over heads:
the copy needs one distribution over the source that training shapes for pointing (a pretrained
model's heads each do another job, and their average is diffuse); it also gives See et al.'s
context vector ``c_t`` for ``P_vocab`` and ``p_gen``, and it works with any attention
implementation (reading the model's attention weights would force the slow "eager" one).

Decoding is incremental: a :class:`TransformerState` holds each decoder layer's self-attention
keys and values of the prefix and its cross-attention keys and values of the source (computed
once, at the first step), so a step runs the decoder on one token. The state is a value: a step
never changes the state it starts from (it returns a new one), and ``select`` picks batch rows
for beam search.

A model built from a pretrained folder copies the folder's weights at build time; its ``config``
records the resolved ``transformers`` config (``backbone_config``), never the folder, so a saved
model loads without the folder.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from seqae.errors import UsageError
from seqae.text.seq2seq import (
    AttentionSeq2Seq,
    Memory,
    Step,
    check_cell,
    check_source,
    lengths_mask,
)

__all__ = [
    "BACKBONES",
    "TRANSFORMER_BACKBONES",
    "SIZE_DEFAULTS",
    "Backbone",
    "BackboneError",
    "DotAttention",
    "TransformerState",
    "TransformerSeq2Seq",
    "build_core",
    "PointerLayers",
    "build_pointer_layers",
    "transformer_config",
]

Backbone = Literal["rnn", "bart", "t5"]
#: The backbones a text model can be built on.
BACKBONES: tuple[str, ...] = ("rnn", "bart", "t5")
#: The ``transformers`` encoder-decoders among them (their config's ``model_type``).
TRANSFORMER_BACKBONES: tuple[str, ...] = ("bart", "t5")
#: ``backbone_size`` keys and their defaults: model width, encoder and decoder layers each,
#: attention heads, feed-forward width, and (BART only: T5's positions are relative) the
#: longest sequence an encoder or decoder reads.
SIZE_DEFAULTS: dict[str, int] = {
    "d_model": 256,
    "layers": 2,
    "heads": 4,
    "ffn": 1024,
    "max_positions": 1024,
}
# config.json keys that name a file or a library version rather than the architecture
_UNRECORDED = ("_name_or_path", "transformers_version", "architectures")


class BackboneError(UsageError, ValueError):
    """A backbone the user asked for cannot be built (one line: what is wrong, what was
    expected)."""


# --------------------------------------------------------------------------------------------
# the transformer core
# --------------------------------------------------------------------------------------------


class DotAttention(nn.Module):
    """Single-head scaled dot-product attention ``a = softmax_i((W_q s) . (W_k h_i) / sqrt(A))``
    over real positions (Luong et al. 2015's "general" score, arXiv 1508.04025).

    Args:
        query_dim: Size of the decoder state ``s``.
        memory_dim: Size of the encoder states ``h_i``.
        attn_dim: Size ``A`` of the projections.
    """

    def __init__(self, *, query_dim: int, memory_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(memory_dim, attn_dim, bias=False)  # W_k, applied once: Memory.keys
        self.query = nn.Linear(query_dim, attn_dim, bias=False)  # W_q
        self.scale = attn_dim**-0.5

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """``query (B, Q)`` or ``(B, S, Q)`` -> ``(context (B, [S,] M), weights (B, [S,] T))``."""
        one = query.dim() == 2
        q = self.query(query.unsqueeze(1) if one else query)  # (B, S, A)
        scores = torch.bmm(q, memory.keys.transpose(1, 2)) * self.scale  # (B, S, T)
        weights = torch.softmax(scores.masked_fill(~memory.mask[:, None], float("-inf")), dim=-1)
        context = torch.bmm(weights, memory.states)  # (B, S, M)
        return (context.squeeze(1), weights.squeeze(1)) if one else (context, weights)


class TransformerState(NamedTuple):
    """A transformer decoder's state between steps: per layer, the self-attention keys and
    values of the prefix read so far, and the cross-attention keys and values of the source.

    Both are flat tuples ``(k_0, v_0, k_1, v_1, ...)`` of ``(B, heads, length, head_dim)``
    tensors; both are empty before the first step."""

    #: Self-attention keys and values, ``length`` = tokens read so far.
    self_attention: tuple[Tensor, ...] = ()
    #: Cross-attention keys and values, ``length`` = the source's padded length.
    cross_attention: tuple[Tensor, ...] = ()

    @property
    def length(self) -> int:
        """Tokens read so far."""
        return self.self_attention[0].shape[2] if self.self_attention else 0

    def select(self, index: Tensor) -> TransformerState:
        """Batch rows ``index`` (``(N,)``, repeats allowed), as a new state (beam search)."""
        return TransformerState(
            tuple(t.index_select(0, index) for t in self.self_attention),
            tuple(t.index_select(0, index) for t in self.cross_attention),
        )

    def to_cache(self) -> Any:
        """A fresh ``transformers`` cache holding this state (the decoder grows the cache by
        concatenation, so this state's tensors are never changed)."""
        from transformers import DynamicCache, EncoderDecoderCache

        caches = []
        for flat in (self.self_attention, self.cross_attention):
            cache = DynamicCache()
            for layer in range(len(flat) // 2):
                cache.update(flat[2 * layer], flat[2 * layer + 1], layer)
            caches.append(cache)
        return EncoderDecoderCache(*caches)  # cross-attention marked computed when present

    @classmethod
    def from_cache(cls, cache: Any) -> TransformerState:
        """The state a ``transformers`` encoder-decoder cache holds after a decoder call."""
        return cls(
            tuple(t for layer in cache.self_attention_cache for t in layer[:2]),
            tuple(t for layer in cache.cross_attention_cache for t in layer[:2]),
        )


class TransformerSeq2Seq(nn.Module):
    """A ``transformers`` BART or T5 encoder-decoder (the base model, without its LM head)
    behind the recurrent core's interface, plus the copy attention (:class:`DotAttention`).

    Build it with :func:`build_core` (from size keys, a local pretrained folder, or a saved
    ``backbone_config``).

    Args:
        hf_config: A ``transformers`` ``BartConfig`` or ``T5Config`` (already checked against
            the tokenizer).
        dropout: Dropout on the output features (the model's own dropout is in ``hf_config``).
    """

    def __init__(self, *, hf_config: Any, dropout: float) -> None:
        super().__init__()
        from transformers import BartModel, T5Model

        self.kind: str = hf_config.model_type
        self.model = BartModel(hf_config) if self.kind == "bart" else T5Model(hf_config)
        d = hf_config.d_model
        self.attention = DotAttention(query_dim=d, memory_dim=d, attn_dim=d)
        self.drop = nn.Dropout(dropout)
        #: Size of :attr:`Step.features` (``[s_t; c_t]``).
        self.features_dim = 2 * d
        #: Size of :attr:`Step.inputs` (the token embedding).
        self.inputs_dim = d
        #: The longest sequence the encoder or the decoder reads (BART's learned positions).
        self.max_positions: int | None = (
            hf_config.max_position_embeddings if self.kind == "bart" else None
        )
        # the decoder's cache argument was renamed past_key_values -> cache in transformers 5
        params = inspect.signature(self.model.decoder.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # a pretrained LM head (weight (V, d), bias (V,) or None) for init_output, then dropped
        self._head: tuple[Tensor, Tensor | None] | None = None
        # the embeddings tied to `shared` are saved once (safetensors refuses shared tensors)
        self._aliases = _tied_aliases(self)
        self.register_state_dict_post_hook(_drop_aliases)
        self.register_load_state_dict_pre_hook(_restore_aliases)

    @property
    def hf_config(self) -> Any:
        """The ``transformers`` config of the model."""
        return self.model.config

    @property
    def config(self) -> dict[str, Any]:
        """The backbone's entries of a model's config: the resolved ``transformers`` config,
        from which :func:`build_core` rebuilds the same architecture without any folder."""
        return {"backbone": self.kind, "backbone_config": _recorded(self.hf_config)}

    @property
    def embedding(self) -> nn.Embedding:
        """The token embedding shared by the encoder, the decoder (and a tied LM head)."""
        return self.model.get_input_embeddings()

    def init_output(self, out: nn.Linear) -> None:
        """Initialise a model's vocabulary layer over ``[s_t; c_t]`` from a pretrained folder's
        LM head: ``logits = W_lm s_t + b`` (T5's output scaling folded into ``W_lm``), the
        context's columns 0. Nothing to do for a model built from a config."""
        if self._head is None:
            return
        weight, bias = self._head
        d = self.inputs_dim
        with torch.no_grad():
            out.weight.zero_()
            out.weight[:, :d].copy_(weight)
            out.bias.copy_(bias if bias is not None else torch.zeros_like(out.bias))
        self._head = None

    def _check_positions(self, n: int, what: str) -> None:
        if self.max_positions is not None and n > self.max_positions:
            raise ValueError(
                f"the {what} has {n} tokens; this BART backbone reads at most "
                f"{self.max_positions} (backbone_size max_positions)"
            )

    def encode(
        self, ids: Tensor, lengths: Tensor, *, embedded: Tensor | None = None
    ) -> tuple[Memory, TransformerState]:
        """Read the source.

        Args:
            ids: ``(B, T)`` in-vocabulary ids, padded.
            lengths: ``(B,)`` real lengths (each >= 1).
            embedded: ``(B, T, d)`` the source's token embeddings instead of ``ids``' (relaxed
                tokens: :func:`~seqae.text.seq2seq.embed_soft` over :attr:`embedding`).

        Returns:
            The :class:`Memory` (the encoder's output states, 0 at padding) and the empty
            :class:`TransformerState`.
        """
        check_source(ids, lengths)
        self._check_positions(ids.shape[1], "source")
        mask = lengths_mask(lengths.to(ids.device), ids.shape[1])  # (B, T)
        tokens = {"input_ids": ids} if embedded is None else {"inputs_embeds": embedded}
        states = self.model.encoder(**tokens, attention_mask=mask.long()).last_hidden_state
        states = states * mask.unsqueeze(-1)  # (B, T, d), zeros at padding
        return Memory(states, self.attention.key(states), mask), TransformerState()

    def _decode(self, inputs: Tensor, state: TransformerState, memory: Memory) -> Step:
        """Run the decoder on ``inputs (B, S)`` after ``state``: a Step with a time axis."""
        self._check_positions(state.length + inputs.shape[1], "decoded sequence")
        emb = self.embedding(inputs)  # (B, S, d)
        cache = state.to_cache()
        out = self.model.decoder(
            inputs_embeds=emb,
            encoder_hidden_states=memory.states,
            encoder_attention_mask=memory.mask.long(),
            use_cache=True,
            **{self._cache_arg: cache},
        )
        s = out.last_hidden_state  # (B, S, d)
        context, attention = self.attention(s, memory)  # (B, S, d), (B, S, T)
        features = self.drop(torch.cat([s, context], dim=-1))  # (B, S, 2d)
        return Step(features, attention, emb, TransformerState.from_cache(cache))

    def step(self, prev_ids: Tensor, state: TransformerState, memory: Memory) -> Step:
        """Advance the decoder by one token.

        Args:
            prev_ids: ``(B,)`` the previous in-vocabulary token (``<s>`` first).
            state: The state after the previous step (left unchanged).
            memory: The encoded source.
        """
        out = self._decode(prev_ids[:, None], state, memory)
        return Step(out.features[:, 0], out.attention[:, 0], out.inputs[:, 0], out.state)

    def teacher_forced(
        self, inputs: Tensor, state: TransformerState, memory: Memory
    ) -> Iterator[Step]:
        """The steps of reading ``inputs`` (``(B, S)`` in-vocabulary ids, ``<s>`` first), in
        order: what :meth:`step` gives token by token, from one causal pass of the decoder
        (each step's state is a view of the pass's keys and values up to its token)."""
        whole = self._decode(inputs, state, memory)
        start = state.length
        for t in range(inputs.shape[1]):
            prefix = tuple(kv[:, :, : start + t + 1] for kv in whole.state.self_attention)
            yield Step(
                whole.features[:, t],
                whole.attention[:, t],
                whole.inputs[:, t],
                TransformerState(prefix, whole.state.cross_attention),
            )


def _tied_aliases(module: nn.Module) -> dict[str, str]:
    """``{alias: name}`` of the tensors ``module`` holds under more than one name."""
    first: dict[int, str] = {}
    aliases = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            aliases[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return aliases


def _drop_aliases(
    module: TransformerSeq2Seq, state_dict: dict[str, Any], prefix: str, _meta: Any
) -> None:
    for alias in module._aliases:
        state_dict.pop(prefix + alias, None)


def _restore_aliases(
    module: TransformerSeq2Seq, state_dict: dict[str, Any], prefix: str, *_args: Any
) -> None:
    for alias, name in module._aliases.items():
        if prefix + name in state_dict:
            state_dict[prefix + alias] = state_dict[prefix + name]


def _recorded(hf_config: Any) -> dict[str, Any]:
    """A ``transformers`` config as JSON-ready ``backbone_config`` (no file names, versions),
    exactly as it reads back from ``config.json`` (label maps get string keys)."""
    entries = {k: v for k, v in hf_config.to_dict().items() if k not in _UNRECORDED}
    return json.loads(json.dumps(entries))


# --------------------------------------------------------------------------------------------
# building a core
# --------------------------------------------------------------------------------------------


def transformer_config(
    backbone: str,
    size: Mapping[str, int] | None,
    *,
    vocab_size: int,
    dropout: float,
    pad_id: int,
    bos_id: int,
    eos_id: int,
    who: str = "model",
) -> Any:
    """A ``transformers`` ``BartConfig`` or ``T5Config`` from size keys (:data:`SIZE_DEFAULTS`)
    and the tokenizer's vocabulary size and special ids (``<s>`` starts every decoded
    sequence).

    Args:
        backbone: ``"bart"`` or ``"t5"``.
        size: Some of :data:`SIZE_DEFAULTS`'s keys (the others keep their defaults).
        vocab_size, pad_id, bos_id, eos_id: The tokenizer's.
        dropout: The model's dropout (BART's ``dropout``, T5's ``dropout_rate``).
        who: The model's name, for messages.
    """
    from transformers import BartConfig, T5Config

    size = dict(size or {})
    unknown = sorted(set(size) - set(SIZE_DEFAULTS))
    if unknown:
        raise BackboneError(
            f"{who}: unknown backbone_size keys {unknown}; expected some of "
            f"{', '.join(SIZE_DEFAULTS)}"
        )
    s = {**SIZE_DEFAULTS, **size}
    bad = {k: v for k, v in s.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise BackboneError(f"{who}: backbone_size values must be positive ints, got {bad}")
    if s["d_model"] % s["heads"]:
        raise BackboneError(
            f"{who}: backbone_size d_model ({s['d_model']}) must be a multiple of heads "
            f"({s['heads']})"
        )
    ids = {"pad_token_id": pad_id, "bos_token_id": bos_id, "eos_token_id": eos_id}
    if backbone == "bart":
        return BartConfig(
            vocab_size=vocab_size,
            d_model=s["d_model"],
            encoder_layers=s["layers"],
            decoder_layers=s["layers"],
            encoder_attention_heads=s["heads"],
            decoder_attention_heads=s["heads"],
            encoder_ffn_dim=s["ffn"],
            decoder_ffn_dim=s["ffn"],
            max_position_embeddings=s["max_positions"],
            dropout=dropout,
            decoder_start_token_id=bos_id,
            forced_eos_token_id=None,
            **ids,
        )
    return T5Config(
        vocab_size=vocab_size,
        d_model=s["d_model"],
        d_kv=s["d_model"] // s["heads"],
        d_ff=s["ffn"],
        num_layers=s["layers"],
        num_decoder_layers=s["layers"],
        num_heads=s["heads"],
        dropout_rate=dropout,
        decoder_start_token_id=bos_id,
        **ids,
    )


def _set_dropout(hf_config: Any, dropout: float) -> None:
    setattr(hf_config, "dropout" if hf_config.model_type == "bart" else "dropout_rate", dropout)


def _check_agrees(
    who: str,
    hf_config: Any,
    *,
    backbone: str,
    where: str,
    vocab_size: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
) -> None:
    """Refuse (one line) a config that is not a ``backbone`` encoder-decoder, or whose
    vocabulary size or special ids disagree with the tokenizer's."""
    kind = getattr(hf_config, "model_type", None)
    if kind not in TRANSFORMER_BACKBONES or not getattr(hf_config, "is_encoder_decoder", False):
        raise BackboneError(
            f"{who}: {where} holds a {kind!r} model; expected a BART or T5 encoder-decoder"
        )
    if kind != backbone:
        raise BackboneError(
            f"{who}: {where} holds a {kind!r} model but backbone is {backbone!r}; set "
            f"backbone={kind!r} or give a {backbone} folder"
        )
    expected = {
        "vocab_size": vocab_size,
        "pad_token_id": pad_id,
        "eos_token_id": eos_id,
        "decoder_start_token_id": bos_id,
        "bos_token_id": bos_id,
    }
    wrong = [
        f"{key} {getattr(hf_config, key, None)} (tokenizer: {value})"
        for key, value in expected.items()
        if getattr(hf_config, key, None) != value
        and not (key == "bos_token_id" and getattr(hf_config, key, None) is None)
    ]
    if wrong:
        raise BackboneError(
            f"{who}: {where} disagrees with the tokenizer: {', '.join(wrong)}; expected a "
            f"{backbone} model trained with this tokenizer (<s> starts every decoded sequence)"
        )


def _from_folder(
    who: str, path: str | os.PathLike[str], *, backbone: str, dropout: float, **ids: int
) -> TransformerSeq2Seq:
    """A core with the weights of a local ``transformers`` folder (read with
    ``local_files_only=True``: nothing downloads)."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    folder = Path(path)
    if not folder.is_dir():
        raise BackboneError(
            f"{who}: pretrained folder {folder} does not exist; expected a local folder written "
            "by transformers' save_pretrained (nothing is downloaded)"
        )
    try:
        hf_config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"{who}: pretrained folder {folder} has no readable transformers config ({reason})"
        ) from None
    _check_agrees(who, hf_config, backbone=backbone, where=f"pretrained folder {folder}", **ids)
    _set_dropout(hf_config, dropout)
    try:
        full = AutoModelForSeq2SeqLM.from_pretrained(
            folder, config=hf_config, local_files_only=True
        )
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"{who}: cannot read the weights of pretrained folder {folder} ({reason})"
        ) from None
    core = TransformerSeq2Seq(hf_config=hf_config, dropout=dropout)
    base = full.base_model.state_dict()  # BART: the inner BartModel; T5: the whole model
    base = {k: v for k, v in base.items() if not k.startswith("lm_head.")}
    core.model.load_state_dict(base, strict=True)
    head = full.get_output_embeddings().weight.detach().float()
    if backbone == "t5" and getattr(
        hf_config, "scale_decoder_outputs", hf_config.tie_word_embeddings
    ):
        head = head * hf_config.d_model**-0.5  # T5 scales the decoder's output before its head
    bias = getattr(full, "final_logits_bias", None)  # BART's
    core._head = (head.clone(), None if bias is None else bias.detach().float()[0].clone())
    return core


def build_core(
    who: str,
    *,
    backbone: str,
    cell: str,
    emb_dim: int,
    hidden: int,
    layers: int,
    dropout: float,
    vocab_size: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
    backbone_size: Mapping[str, int] | None = None,
    backbone_config: Mapping[str, Any] | None = None,
    pretrained: str | os.PathLike[str] | None = None,
) -> AttentionSeq2Seq | TransformerSeq2Seq:
    """The encoder-decoder core a text model asks for (refusing bad options in one line).

    Args:
        who: The model's name, for messages.
        backbone: ``"rnn"``, ``"bart"`` or ``"t5"``.
        cell: ``"gru"`` or ``"lstm"`` (``"rnn"`` only; a transformer takes the default).
        emb_dim, hidden, layers: The recurrent core's sizes (``"rnn"`` only).
        dropout: Dropout (the recurrent core's; a transformer's ``dropout``/``dropout_rate``
            and on its output features).
        vocab_size, pad_id, bos_id, eos_id: The tokenizer's.
        backbone_size: A transformer's size keys (:data:`SIZE_DEFAULTS`).
        backbone_config: A transformer's whole ``transformers`` config, as a model's ``config``
            records it (how a saved model rebuilds).
        pretrained: A local ``transformers`` folder (BART or T5) whose weights the core takes.
            At most one of ``backbone_size``, ``backbone_config`` and ``pretrained``.
    """
    if backbone not in BACKBONES:
        raise BackboneError(
            f"{who}: backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}"
        )
    given = [
        name
        for name, value in (
            ("backbone_size", backbone_size),
            ("backbone_config", backbone_config),
            ("pretrained", pretrained),
        )
        if value is not None
    ]
    if backbone == "rnn":
        if given:
            raise BackboneError(
                f"{who}: {', '.join(given)} need a transformer backbone "
                f"({' or '.join(TRANSFORMER_BACKBONES)}), but backbone is 'rnn'"
            )
        try:
            check_cell(who, cell)
        except ValueError as exc:
            raise BackboneError(str(exc)) from None
        return AttentionSeq2Seq(
            vocab_size=vocab_size,
            emb_dim=emb_dim,
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            pad_id=pad_id,
            cell=cell,
        )
    if cell != "gru":
        raise BackboneError(
            f"{who}: cell applies to backbone 'rnn' only; got cell={cell!r} with {backbone!r}"
        )
    if len(given) > 1:
        raise BackboneError(f"{who}: give at most one of {', '.join(given)}")
    ids = {"vocab_size": vocab_size, "pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id}
    if pretrained is not None:
        return _from_folder(who, pretrained, backbone=backbone, dropout=dropout, **ids)
    if backbone_config is not None:
        from transformers import AutoConfig

        options = dict(backbone_config)
        kind = options.pop("model_type", None)
        if kind not in TRANSFORMER_BACKBONES:
            raise BackboneError(
                f"{who}: backbone_config has model_type {kind!r}; expected one of "
                f"{', '.join(TRANSFORMER_BACKBONES)}"
            )
        hf_config = AutoConfig.for_model(kind, **options)
        _check_agrees(who, hf_config, backbone=backbone, where="backbone_config", **ids)
        _set_dropout(hf_config, dropout)
    else:
        hf_config = transformer_config(backbone, backbone_size, dropout=dropout, who=who, **ids)
    return TransformerSeq2Seq(hf_config=hf_config, dropout=dropout)


class PointerLayers(NamedTuple):
    """A pointer-generator model's layers (the generator's and the reconstructor's)."""

    #: The encoder-decoder core (:func:`build_core`).
    core: AttentionSeq2Seq | TransformerSeq2Seq
    #: The vocabulary layer over :attr:`~seqae.text.seq2seq.Step.features` (``P_vocab``
    #: logits; a pretrained folder's LM head, if any).
    out: nn.Linear
    #: The copy switch ``p_gen`` over ``[features; inputs]`` (None without copying).
    switch: nn.Linear | None


def build_pointer_layers(
    who: str, *, copy: bool, vocab_size: int, **core_options: Any
) -> PointerLayers:
    """The layers of a pointer-generator model (See et al. 2017), built in this order: the
    core, the vocabulary layer (a pretrained folder's LM head, if any) and, with ``copy``, the
    copy switch.

    Args:
        who: The model's name, for messages.
        copy: Build the copy switch.
        vocab_size: The tokenizer's vocabulary size (the vocabulary layer's outputs).
        core_options: The rest of :func:`build_core`'s keyword arguments (``backbone``,
            ``cell``, sizes, ``dropout``, special ids, ``backbone_size``, ...).
    """
    core = build_core(who, vocab_size=vocab_size, **core_options)
    out = nn.Linear(core.features_dim, vocab_size)
    switch = nn.Linear(core.features_dim + core.inputs_dim, 1) if copy else None
    core.init_output(out)
    return PointerLayers(core, out, switch)
