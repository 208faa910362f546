"""The text models' backbones (seqae.text.backbones): an LSTM cell, and BART and T5 cores built
from size keys or from a local pretrained folder, behind the GRU core's interface: forward and
backward, decoding (incremental steps, beam search's state selection), copying, saving and
loading, the pretrained folder (offline; mismatched folders refused in one line), and saved
configs written before the backbones existed."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.core.losses import token_cross_entropy  # noqa: E402
from seqae.core.saving import save_model_files  # noqa: E402
from seqae.text.backbones import BackboneError, TransformerState  # noqa: E402
from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.seq2seq import TINY, DecoderState, Summaries, select_state  # noqa: E402
from seqae.text.tokenizer import ExtendedBatch, WordTokenizer  # noqa: E402
from tests.text.summary_data import (  # noqa: E402
    ARTICLES,
    article_batch,
    article_targets,
    assert_finite_grads,
    check_decoded,
    summary_batch,
)

TINY_SIZE = {"d_model": 16, "layers": 1, "heads": 2, "ffn": 32, "max_positions": 64}
BACKBONES = {
    "lstm": {"cell": "lstm", "emb_dim": 8, "hidden": 8},
    "bart": {"backbone": "bart", "backbone_size": TINY_SIZE},
    "t5": {"backbone": "t5", "backbone_size": TINY_SIZE},
}
KINDS = list(BACKBONES)


def _ids(tok: WordTokenizer) -> dict[str, int]:
    return {"pad_id": tok.pad_id, "unk_id": tok.unk_id, "bos_id": tok.bos_id, "eos_id": tok.eos_id}


def _model(cls, tok: WordTokenizer, kind: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    options = {**BACKBONES[kind], **_ids(tok), **kwargs}
    return cls(vocab_size=tok.vocab_size, **options).eval()


def _inputs(cls, tok: WordTokenizer, src: ExtendedBatch):
    if cls is PointerGenerator:
        return src, summary_batch(tok, src).ids
    return summary_batch(tok, src), article_targets(tok, src)


# --------------------------------------------------------------------------------------------
# forward and backward
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cls", [PointerGenerator, Reconstructor])
def test_forward_is_a_distribution_and_every_weight_learns(tok, kind, cls) -> None:
    model = _model(cls, tok, kind, dropout=0.1).train()
    src = article_batch(tok)
    inputs = _inputs(cls, tok, src)
    targets = inputs[1]
    log_probs = model(*inputs)
    assert log_probs.shape == (*targets.shape, tok.vocab_size + src.max_oovs)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(targets.shape))
    assert (log_probs[..., tok.pad_id] == torch.log(torch.tensor(TINY))).all()  # never written
    scored = targets if cls is PointerGenerator else model.score_targets(*inputs)
    loss = token_cross_entropy(log_probs, scored, pad_id=tok.pad_id)
    assert torch.isfinite(loss)
    loss.backward()
    assert_finite_grads(model)


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_transformer_steps_match_one_causal_pass_and_leave_their_state_unchanged(tok, kind) -> None:
    core = _model(Reconstructor, tok, kind).core
    src = article_batch(tok)
    ids = src.ids
    memory, state = core.encode(ids, src.lengths)
    assert bool((memory.states[~memory.mask] == 0).all())  # zeros at padding
    inputs = torch.cat([torch.full((3, 1), tok.bos_id), ids[:, :5]], dim=1)  # (3, 6)
    whole = list(core.teacher_forced(inputs, state, memory))
    assert len(whole) == 6
    for t, read in enumerate(whole):
        assert read.features.shape == (3, core.features_dim)
        assert read.attention.shape == (3, ids.shape[1])
        torch.testing.assert_close(read.attention.sum(-1), torch.ones(3))
        assert bool((read.attention[~memory.mask] == 0).all())
        step = core.step(inputs[:, t], state, memory)
        again = core.step(inputs[:, t], state, memory)  # from the same state: the same step
        torch.testing.assert_close(again.features, step.features, rtol=0, atol=0)
        torch.testing.assert_close(step.features, read.features)
        torch.testing.assert_close(step.attention, read.attention)
        torch.testing.assert_close(step.inputs, read.inputs)
        assert read.state.length == step.state.length == t + 1
        for mine, theirs in zip(step.state, read.state, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                torch.testing.assert_close(a, b)
        state = step.state
    assert isinstance(state, TransformerState) and state.length == 6
    # teacher forcing can go on from a state
    more = list(core.teacher_forced(inputs[:, :2], state, memory))
    step = core.step(inputs[:, 0], state, memory)
    torch.testing.assert_close(more[0].features, step.features)
    assert more[-1].state.length == 8


@pytest.mark.parametrize("kind", KINDS)
def test_selecting_rows_of_a_state_then_stepping_is_stepping_then_selecting(tok, kind) -> None:
    core = _model(PointerGenerator, tok, kind).core
    src = article_batch(tok)
    memory, state = core.encode(src.ids, src.lengths)
    prev = torch.full((3,), tok.bos_id)
    for token in (tok.bos_id, 5, 7):  # a few steps, so the state holds a prefix
        state = core.step(torch.full((3,), token), state, memory).state
    prev = torch.tensor([6, 8, 9])
    index = torch.tensor([2, 0, 2, 1])  # repeats, as beam search asks
    from seqae.text.seq2seq import select_memory

    picked = core.step(prev[index], select_state(state, index), select_memory(memory, index))
    whole = core.step(prev, state, memory)
    torch.testing.assert_close(picked.features, whole.features[index])
    torch.testing.assert_close(picked.attention, whole.attention[index])
    expected_type = DecoderState if kind == "lstm" else TransformerState
    assert isinstance(picked.state, expected_type)
    if kind == "lstm":
        assert picked.state.cell is not None and picked.state.cell.shape == (1, 4, 8)


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sample_greedy_and_beam_decode_and_beam_of_one_is_greedy(tok, kind) -> None:
    src = article_batch(tok)
    for seed in range(2):
        gen = _model(PointerGenerator, tok, kind, seed=seed)
        with torch.no_grad():
            gen.out.bias[tok.eos_id] += 1.5  # </s> often the runner-up
        torch.manual_seed(seed)
        sampled = gen.sample(src, max_words=5)
        assert sampled.log_probs.requires_grad
        greedy = gen.greedy(src, max_words=5)
        beam1 = gen.beam(src, max_words=5, beam_size=1)
        beam3 = gen.beam(src, max_words=5, beam_size=3, length_penalty=0.0)
        for out in (sampled, greedy, beam1, beam3):
            assert out.ids.shape[0] == 3 and out.ids.shape[1] <= 6
            check_decoded(out, tok.eos_id, tok.pad_id, 5)
        assert beam1.ids.tolist() == greedy.ids.tolist()
        torch.testing.assert_close(beam1.log_prob, greedy.log_prob)
        # beam search's state selection is right: its score is what teacher forcing gives
        tf = gen(src, beam3.ids).gather(-1, beam3.ids[..., None]).squeeze(-1)
        torch.testing.assert_close(beam3.log_prob, tf.masked_fill(~beam3.mask, 0).sum(1))
        assert bool((beam3.log_prob >= greedy.log_prob - 1e-5).all())
        # and the sample's log-probs are those of teacher forcing too
        tf = gen(src, sampled.ids).gather(-1, sampled.ids[..., None]).squeeze(-1)
        torch.testing.assert_close(sampled.log_probs, tf.masked_fill(~sampled.mask, 0))


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_padding_does_not_change_a_transformer_result(tok, kind) -> None:
    gen, rec = _model(PointerGenerator, tok, kind), _model(Reconstructor, tok, kind)
    src = article_batch(tok)
    summary, article = summary_batch(tok, src), article_targets(tok, src)
    batched = gen.greedy(src, max_words=5)
    batched_ll = rec.log_likelihood(summary, article)
    for i in range(3):
        one = article_batch(tok, ARTICLES[i : i + 1])
        assert gen.greedy(one, max_words=5).ids[0].tolist() == (
            batched.ids[i, : batched.lengths[i]].tolist()
        )
        one_summary = Summaries(
            summary.ids[i : i + 1, : summary.lengths[i]], summary.lengths[i : i + 1], one.max_oovs
        )
        one_article = article[i : i + 1, : int((article[i] != tok.pad_id).sum())]
        torch.testing.assert_close(
            rec.log_likelihood(one_summary, one_article), batched_ll[i : i + 1]
        )


# --------------------------------------------------------------------------------------------
# copying
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_articles_oov_words_can_be_copied(tok, kind) -> None:
    gen = _model(PointerGenerator, tok, kind)
    src = article_batch(tok)
    targets = summary_batch(tok, src).ids
    v = tok.vocab_size
    probs = gen(src, targets).exp()  # (B, S, V + 2)
    assert bool((probs[0, :, v] > 1e-4).all())  # zebra
    assert bool((probs[2, :, v : v + 2] > 1e-4).all())  # quokka, wombat
    assert bool((probs[0, :, v + 1] <= TINY).all()) and bool((probs[1, :, v:] <= TINY).all())
    # with p_gen ~ 0 all the mass is on the article's words (the copy attention)
    with torch.no_grad():
        gen.switch.weight.zero_()
        gen.switch.bias.fill_(-30.0)
    probs = gen(src, targets).exp()
    on_article = torch.zeros_like(probs[:, 0], dtype=torch.bool)
    on_article.scatter_(1, src.extended_ids, True)
    on_article[:, tok.pad_id] = False
    mass = (probs * on_article[:, None, :]).sum(-1)
    torch.testing.assert_close(mass, torch.ones_like(mass))
    # and greedy decoding then writes the out-of-vocabulary word the attention points at
    out = gen.greedy(src, max_words=2)
    assert bool((out.ids[:, 0] >= 4).all())
    assert all(
        int(out.ids[b, 0]) in src.extended_ids[b, : src.lengths[b]].tolist() for b in range(3)
    )


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_a_transformer_reconstructor_copies_oov_words_of_the_summary(tok, kind) -> None:
    rec = _model(Reconstructor, tok, kind)
    src = article_batch(tok)
    summary, article = summary_batch(tok, src), article_targets(tok, src)
    v = tok.vocab_size
    probs = rec(summary, article).exp()
    assert bool((probs[0, :, v] > 1e-4).all())  # zebra, in the summary
    assert bool((probs[2, :, v : v + 2] > 1e-4).all())
    assert bool((probs[1, :, v:] <= TINY).all())


# --------------------------------------------------------------------------------------------
# saving and loading
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cls", [PointerGenerator, Reconstructor])
def test_save_load_round_trip_gives_identical_outputs(tok, tmp_path, kind, cls) -> None:
    model = _model(cls, tok, kind)
    src = article_batch(tok)
    inputs = _inputs(cls, tok, src)
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["config"] == model.config
    config = model.config
    if kind == "lstm":
        assert config["backbone"] == "rnn" and config["cell"] == "lstm"
    else:
        assert config["backbone"] == kind and "backbone_config" in config
        assert config["backbone_config"]["model_type"] == kind
        assert config["backbone_config"]["d_model"] == 16
        assert "pretrained" not in config and "emb_dim" not in config
    loaded = cls.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(*inputs), model(*inputs), rtol=0, atol=0)
    if cls is PointerGenerator:
        assert (
            loaded.beam(src, max_words=4, beam_size=2).ids.tolist()
            == model.beam(src, max_words=4, beam_size=2).ids.tolist()
        )


@pytest.mark.parametrize("cls", [PointerGenerator, Reconstructor])
def test_a_config_saved_without_backbone_keys_loads_as_a_gru(tok, tmp_path, cls) -> None:
    torch.manual_seed(0)
    model = cls(vocab_size=tok.vocab_size, emb_dim=8, hidden=8).eval()
    old = {k: v for k, v in model.config.items() if k not in ("backbone", "cell")}
    save_model_files(model, tmp_path / "old", model_type=cls.model_type, config=old)
    loaded = cls.from_pretrained(tmp_path / "old").eval()
    assert loaded.config == model.config and loaded.config["cell"] == "gru"
    assert isinstance(loaded.core.encoder, torch.nn.GRU)
    inputs = _inputs(cls, tok, article_batch(tok))
    torch.testing.assert_close(loaded(*inputs), model(*inputs), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# a local pretrained folder
# --------------------------------------------------------------------------------------------


def _hf_folder(tok: WordTokenizer, path, kind: str = "bart", **overrides):
    """A tiny transformers encoder-decoder saved with save_pretrained (as a user's folder)."""
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    vocab_size = overrides.pop("vocab_size", tok.vocab_size)
    ids = {
        "pad_token_id": tok.pad_id,
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eos_id,
        "decoder_start_token_id": tok.bos_id,
        **overrides,
    }
    torch.manual_seed(7)
    if kind == "bart":
        config = BartConfig(
            vocab_size=vocab_size,
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=64,
            **ids,
        )
        model = BartForConditionalGeneration(config)
        with torch.no_grad():
            model.final_logits_bias.normal_()
    else:
        config = T5Config(
            vocab_size=vocab_size,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            **ids,
        )
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(path)
    return model.eval()


@pytest.mark.parametrize("kind", ["bart", "t5"])
def test_a_local_pretrained_folder_is_loaded_offline_and_saved_with_the_model(
    tok, tmp_path, monkeypatch, kind
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = _hf_folder(tok, tmp_path / "hf", kind)
    src = article_batch(tok)
    gen = PointerGenerator(
        vocab_size=tok.vocab_size, backbone=kind, pretrained=tmp_path / "hf", **_ids(tok)
    ).eval()
    rec = Reconstructor(
        vocab_size=tok.vocab_size, backbone=kind, pretrained=str(tmp_path / "hf"), **_ids(tok)
    ).eval()
    # the folder's weights, and its LM head as the vocabulary layer's s_t columns
    ours, theirs = gen.core.model.state_dict(), hf.base_model.state_dict()
    assert set(ours) <= set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    head = hf.get_output_embeddings().weight
    if kind == "t5":
        head = head * 16**-0.5
    torch.testing.assert_close(gen.out.weight[:, :16], head)
    assert bool((gen.out.weight[:, 16:] == 0).all())
    bias = hf.final_logits_bias[0] if kind == "bart" else torch.zeros(tok.vocab_size)
    torch.testing.assert_close(gen.out.bias, bias)
    # the vocabulary layer over [s_t; c_t] gives the folder's own next-token logits
    ids = src.ids
    dec = torch.cat([torch.full((3, 1), tok.bos_id), ids[:, :3]], dim=1)
    memory, state = gen.core.encode(ids, src.lengths)
    features = torch.stack([s.features for s in gen.core.teacher_forced(dec, state, memory)], 1)
    expected = hf(input_ids=ids, attention_mask=memory.mask.long(), decoder_input_ids=dec).logits
    torch.testing.assert_close(gen.out(features), expected, atol=1e-5, rtol=1e-5)
    # the saved model needs no folder
    config = gen.config
    assert "pretrained" not in config and config["backbone_config"]["model_type"] == kind
    gen.save_pretrained(tmp_path / "gen")
    rec.save_pretrained(tmp_path / "rec")
    shutil.rmtree(tmp_path / "hf")
    inputs = _inputs(PointerGenerator, tok, src)
    loaded = PointerGenerator.from_pretrained(tmp_path / "gen").eval()
    torch.testing.assert_close(loaded(*inputs), gen(*inputs), rtol=0, atol=0)
    inputs = _inputs(Reconstructor, tok, src)
    loaded_rec = Reconstructor.from_pretrained(tmp_path / "rec").eval()
    torch.testing.assert_close(loaded_rec(*inputs), rec(*inputs), rtol=0, atol=0)


def _refusal(tok, tmp_path, match: str, **kwargs) -> None:
    with pytest.raises(BackboneError, match=match) as caught:
        PointerGenerator(vocab_size=tok.vocab_size, **_ids(tok), **kwargs)
    assert "\n" not in str(caught.value)


def test_a_mismatched_or_foreign_folder_is_refused_in_one_line(tok, tmp_path, monkeypatch):
    from transformers import BertConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hf_folder(tok, tmp_path / "big", vocab_size=tok.vocab_size + 5)
    _refusal(tok, tmp_path, "vocab_size", backbone="bart", pretrained=tmp_path / "big")
    _hf_folder(tok, tmp_path / "pad", pad_token_id=1)
    _refusal(tok, tmp_path, "pad_token_id 1", backbone="bart", pretrained=tmp_path / "pad")
    _hf_folder(tok, tmp_path / "start", decoder_start_token_id=tok.eos_id)
    _refusal(
        tok, tmp_path, "decoder_start_token_id", backbone="bart", pretrained=tmp_path / "start"
    )
    _hf_folder(tok, tmp_path / "t5", "t5")
    _refusal(
        tok,
        tmp_path,
        "'t5' model but backbone is 'bart'",
        backbone="bart",
        pretrained=tmp_path / "t5",
    )
    BertConfig(vocab_size=tok.vocab_size).save_pretrained(tmp_path / "bert")
    _refusal(
        tok, tmp_path, "BART or T5 encoder-decoder", backbone="bart", pretrained=tmp_path / "bert"
    )
    _refusal(tok, tmp_path, "does not exist", backbone="t5", pretrained=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    _refusal(
        tok,
        tmp_path,
        "no readable transformers config",
        backbone="t5",
        pretrained=tmp_path / "empty",
    )


def test_bad_backbone_options_are_refused_in_one_line(tok, tmp_path) -> None:
    _refusal(tok, tmp_path, "backbone must be one of", backbone="gpt2")
    _refusal(tok, tmp_path, "cell must be one of", cell="rnn")
    _refusal(tok, tmp_path, "need a transformer backbone", backbone_size={"d_model": 16})
    _refusal(tok, tmp_path, "need a transformer backbone", pretrained=tmp_path)
    _refusal(tok, tmp_path, "cell applies to backbone 'rnn' only", backbone="t5", cell="lstm")
    _refusal(tok, tmp_path, "unknown backbone_size keys", backbone="t5", backbone_size={"x": 1})
    _refusal(
        tok,
        tmp_path,
        "multiple of heads",
        backbone="bart",
        backbone_size={"d_model": 10, "heads": 4},
    )
    _refusal(
        tok,
        tmp_path,
        "at most one of",
        backbone="bart",
        backbone_size={"layers": 1},
        pretrained=tmp_path,
    )
    with pytest.raises(ValueError, match="reads at most 8"):
        gen = PointerGenerator(
            vocab_size=tok.vocab_size,
            backbone="bart",
            backbone_size={**TINY_SIZE, "max_positions": 8},
        )
        gen.greedy(article_batch(tok), max_words=2)  # the articles have 11 tokens


# --------------------------------------------------------------------------------------------
# the discriminator's cell
# --------------------------------------------------------------------------------------------


def test_an_lstm_discriminator_sees_only_prefixes_and_round_trips(tmp_path) -> None:
    torch.manual_seed(1)
    disc = PrefixDiscriminator(
        vocab_size=24, embedding_dim=8, hidden_size=16, num_layers=2, cell="lstm"
    ).eval()
    assert isinstance(disc.rnn, torch.nn.LSTM) and disc.config["cell"] == "lstm"
    ids = torch.randint(4, 24, (3, 7))
    lengths = torch.tensor([7, 7, 5])
    base = disc(ids, lengths)
    changed = ids.clone()
    changed[:, 4] = (changed[:, 4] - 4 + 1) % 20 + 4
    torch.testing.assert_close(disc(changed, lengths)[:, :4], base[:, :4])
    assert not torch.allclose(disc(changed, lengths)[:2, 4], base[:2, 4])
    disc.save_pretrained(tmp_path / "d")
    same = PrefixDiscriminator.from_pretrained(tmp_path / "d").eval()
    assert same.config == disc.config
    torch.testing.assert_close(same(ids, lengths), base, rtol=0, atol=0)
    # a config saved before the cell existed loads as a GRU
    gru = PrefixDiscriminator(vocab_size=24, embedding_dim=8, hidden_size=16).eval()
    old = {k: v for k, v in gru.config.items() if k != "cell"}
    save_model_files(gru, tmp_path / "old", model_type=gru.model_type, config=old)
    loaded = PrefixDiscriminator.from_pretrained(tmp_path / "old").eval()
    assert isinstance(loaded.rnn, torch.nn.GRU) and loaded.config["cell"] == "gru"
    torch.testing.assert_close(loaded(ids, lengths), gru(ids, lengths), rtol=0, atol=0)
    with pytest.raises(ValueError, match="cell must be one of"):
        PrefixDiscriminator(vocab_size=24, cell="rnn")
