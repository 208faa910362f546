"""The text plugin's models: the pointer-generator summary generator and the reconstructor
(shapes and gradients, copying of out-of-vocabulary words, decoding limits, REINFORCE log-probs,
saving and loading, padding)."""

from __future__ import annotations

import json

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae import registry  # noqa: E402
from seqae.core.losses import token_cross_entropy  # noqa: E402
from seqae.core.saving import SavedModelError, load_pretrained  # noqa: E402
from seqae.registry import Registry, UnknownComponentError  # noqa: E402
from seqae.text.generator import PointerGenerator, repeated_ngram_ban  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.seq2seq import TINY, Summaries  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402
from tests.text.summary_data import (  # noqa: E402
    ARTICLES,
    SUMMARIES,
    article_batch,
    article_targets,
    assert_finite_grads,
    check_decoded,
    summary_batch,
    words_of,
)

SIZES = {"emb_dim": 8, "hidden": 8}


def _generator(tok: WordTokenizer, seed: int = 0, **kwargs) -> PointerGenerator:
    torch.manual_seed(seed)
    return PointerGenerator(vocab_size=tok.vocab_size, **{**SIZES, **kwargs}).eval()


def _reconstructor(tok: WordTokenizer, seed: int = 0, **kwargs) -> Reconstructor:
    torch.manual_seed(seed)
    return Reconstructor(vocab_size=tok.vocab_size, **{**SIZES, **kwargs}).eval()


# --------------------------------------------------------------------------------------------
# shapes and gradients
# --------------------------------------------------------------------------------------------


def test_generator_forward_is_a_distribution_over_the_extended_vocabulary(tok) -> None:
    gen = _generator(tok, layers=2, dropout=0.1).train()
    src = article_batch(tok)
    tgt = tok.extend_targets(words_of(tok, SUMMARIES), src.oov_words)
    assert src.max_oovs == 2
    log_probs = gen(src, tgt.extended_ids)
    b, s = tgt.extended_ids.shape
    assert log_probs.shape == (b, s, tok.vocab_size + src.max_oovs)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(b, s))
    assert (log_probs[..., tok.pad_id] == torch.log(torch.tensor(TINY))).all()  # never written
    loss = token_cross_entropy(log_probs, tgt.extended_ids, pad_id=tok.pad_id)
    assert torch.isfinite(loss)
    loss.backward()
    assert_finite_grads(gen)


def test_reconstructor_forward_and_log_likelihood(tok) -> None:
    rec = _reconstructor(tok, layers=2, dropout=0.1).train()
    src = article_batch(tok)
    summary, article = summary_batch(tok, src), article_targets(tok, src)
    log_probs = rec(summary, article)
    assert log_probs.shape == (*article.shape, tok.vocab_size + src.max_oovs)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(article.shape))
    rec.eval()
    ll = rec.log_likelihood(summary, article)
    assert ll.shape == (3,) and bool((ll < 0).all())
    targets = rec.score_targets(summary, article)
    by_hand = rec(summary, article).gather(-1, targets[..., None]).squeeze(-1)
    by_hand = by_hand.masked_fill(article == tok.pad_id, 0.0).sum(1)
    torch.testing.assert_close(ll, by_hand)
    n_tokens = (article != tok.pad_id).sum(1)
    torch.testing.assert_close(
        rec.log_likelihood(summary, article, reduction="mean"), ll / n_tokens
    )
    acc = rec.token_accuracy(summary, article)
    assert acc.shape == (3,) and bool(((acc >= 0) & (acc <= 1)).all())
    rec.train()
    (-rec.log_likelihood(summary, article).mean()).backward()
    assert_finite_grads(rec)


def test_reconstructor_without_copy_reads_extended_ids_as_unk(tok) -> None:
    rec = _reconstructor(tok, copy=False)
    src = article_batch(tok)
    summary, article = summary_batch(tok, src), article_targets(tok, src)
    assert rec(summary, article).shape == (*article.shape, tok.vocab_size)
    targets = rec.score_targets(summary, article)
    assert bool((targets < tok.vocab_size).all())
    assert bool((targets[article >= tok.vocab_size] == tok.unk_id).all())
    assert torch.isfinite(rec.log_likelihood(summary, article)).all()


# --------------------------------------------------------------------------------------------
# copying
# --------------------------------------------------------------------------------------------


def test_copy_gives_an_articles_oov_words_probability(tok) -> None:
    gen = _generator(tok)
    src = article_batch(tok)
    tgt = tok.extend_targets(words_of(tok, SUMMARIES), src.oov_words)
    v = tok.vocab_size
    probs = gen(src, tgt.extended_ids).exp()  # (B, S, V + 2)
    # row 0 has one OOV word (zebra = V), row 1 none, row 2 two (quokka = V, wombat = V + 1)
    assert bool((probs[0, :, v] > 1e-4).all())
    assert bool((probs[2, :, v : v + 2] > 1e-4).all())
    assert bool((probs[0, :, v + 1] <= TINY).all()) and bool((probs[1, :, v:] <= TINY).all())

    # with p_gen ~ 0 the distribution is the attention, summed over each word's positions
    with torch.no_grad():
        gen.switch.weight.zero_()
        gen.switch.bias.fill_(-30.0)
    probs = gen(src, tgt.extended_ids).exp()
    on_article = torch.zeros_like(probs[:, 0], dtype=torch.bool)
    on_article.scatter_(1, src.extended_ids, True)
    on_article[:, tok.pad_id] = False
    mass = (probs * on_article[:, None, :]).sum(-1)
    torch.testing.assert_close(mass, torch.ones_like(mass))


def test_reconstructor_copies_oov_words_that_the_summary_carries(tok) -> None:
    rec = _reconstructor(tok)
    src = article_batch(tok)
    summary = summary_batch(tok, src, ["zebra sat .", "dog ran", "quokka sat"])  # no wombat
    article = article_targets(tok, src)
    v = tok.vocab_size
    targets = rec.score_targets(summary, article)
    assert bool((targets[0][article[0] == v] == v).all())  # zebra: copied from the summary
    assert bool((targets[2][article[2] == v] == v).all())  # quokka too
    assert bool((targets[2][article[2] == v + 1] == tok.unk_id).all())  # wombat: an <unk>
    probs = rec(summary, article).exp()
    assert bool((probs[0, :, v] > 1e-4).all()) and bool((probs[2, :, v + 1] <= TINY).all())


def _first_word_data(tok: WordTokenizer, g: torch.Generator, n: int) -> list[str]:
    known = ["cat", "dog", "mat", "park", "big", "small"]
    unknown = [f"xq{i}" for i in range(1000)]
    filler = ["the", "sat", "on", "a", "and", "ran", "to", "is"]
    texts = []
    for _ in range(n):
        pool = unknown if torch.rand((), generator=g) < 0.5 else known
        first = pool[int(torch.randint(len(pool), (), generator=g))]
        rest = [filler[int(i)] for i in torch.randint(len(filler), (5,), generator=g)]
        texts.append(" ".join([first, *rest]))
    return texts


def test_a_tiny_generator_learns_to_copy_the_first_word_even_when_unknown(tok) -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    gen = PointerGenerator(vocab_size=tok.vocab_size, emb_dim=16, hidden=24)
    opt = torch.optim.Adam(gen.parameters(), lr=0.02)
    for _ in range(60):
        texts = _first_word_data(tok, g, 16)
        src = article_batch(tok, texts)
        tgt = tok.extend_targets([[t.split()[0]] for t in texts], src.oov_words)
        loss = token_cross_entropy(gen(src, tgt.extended_ids), tgt.extended_ids, pad_id=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen.eval()
    texts = _first_word_data(tok, torch.Generator().manual_seed(1), 32)  # new articles
    src = article_batch(tok, texts)
    out = gen.greedy(src, max_words=3)
    written = [
        tok.decode_extended(ids, oov) for ids, oov in zip(out.ids, src.oov_words, strict=True)
    ]
    expected = [t.split()[0] for t in texts]
    assert any(w not in tok for w in expected)  # unseen words, only reachable by copying
    assert written == expected


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eos_bias", [30.0, -30.0, 0.0])
def test_sample_greedy_and_beam_respect_max_words_and_stop_at_eos(tok, eos_bias) -> None:
    gen = _generator(tok)
    with torch.no_grad():
        gen.out.bias[tok.eos_id] += eos_bias
        gen.switch.bias.fill_(30.0 if eos_bias > 0 else 0.0)  # > 0: p_gen ~ 1, no copying
    src = article_batch(tok)
    torch.manual_seed(0)
    outputs = [
        gen.sample(src, max_words=4),
        gen.sample(src, max_words=4, temperature=2.0),
        gen.greedy(src, max_words=4),
        gen.beam(src, max_words=4, beam_size=3),
    ]
    for out in outputs:
        check_decoded(out, tok.eos_id, tok.pad_id, 4)
        if eos_bias > 0:  # </s> at once
            assert out.ids.tolist() == [[tok.eos_id]] * 3
        if eos_bias < 0:  # never </s>: cut at the limit
            assert out.lengths.tolist() == [4, 4, 4]
            assert not bool((out.ids == tok.eos_id).any())


def test_repeated_ngram_ban_marks_what_would_repeat() -> None:
    history = torch.tensor([[5, 6, 5, 7, 5], [1, 2, 3, 4, 5]])
    ban = repeated_ngram_ban(history, 1, 9)
    assert ban[0].nonzero().flatten().tolist() == [5, 6, 7]
    assert ban[1].nonzero().flatten().tolist() == [1, 2, 3, 4, 5]
    # bigrams: after the last token 5, row 0 once wrote 6 and 7; row 1 never wrote 5 before
    assert repeated_ngram_ban(history, 2, 9)[0].nonzero().flatten().tolist() == [6, 7]
    assert not repeated_ngram_ban(history, 2, 9)[1].any()
    # trigrams: (7, 5) never came before in row 0
    assert not repeated_ngram_ban(history, 3, 9).any()
    assert repeated_ngram_ban(torch.tensor([[4, 8, 4]]), 3, 9).nonzero().tolist() == []
    assert repeated_ngram_ban(torch.tensor([[4, 8, 4, 8]]), 3, 9)[
        0
    ].nonzero().flatten().tolist() == [4]
    assert not repeated_ngram_ban(history[:, :0], 1, 9).any()  # nothing written yet
    with pytest.raises(ValueError, match="n must be >= 1"):
        repeated_ngram_ban(history, 0, 9)


def _repeater(tok: WordTokenizer) -> PointerGenerator:
    """A generator that, unconstrained, writes the same word again and again, never </s>."""
    gen = _generator(tok)
    with torch.no_grad():
        gen.out.bias[tok.eos_id] -= 1e4
        gen.out.bias[tok.eos_id + 1] += 50.0  # one word far above every other
        gen.switch.bias.fill_(30.0)  # p_gen ~ 1: no copying
    return gen


def _ngrams(row: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]


@pytest.mark.parametrize("n", [1, 2])
def test_no_repeat_ngram_holds_for_every_decoder(tok, n: int) -> None:
    gen = _repeater(tok)
    src = article_batch(tok)
    word = tok.eos_id + 1
    assert gen.greedy(src, max_words=6).ids.tolist() == [[word] * 6] * 3  # unconstrained
    torch.manual_seed(0)
    outputs = {
        "greedy": gen.greedy(src, max_words=6, no_repeat_ngram=n),
        "sample": gen.sample(src, max_words=6, no_repeat_ngram=n),
        "gumbel": gen.gumbel_sample(src, max_words=6, no_repeat_ngram=n),
        "beam": gen.beam(src, max_words=6, beam_size=3, no_repeat_ngram=n),
    }
    for name, out in outputs.items():
        check_decoded(out, tok.eos_id, tok.pad_id, 6)
        for row, length in zip(out.ids.tolist(), out.lengths.tolist(), strict=True):
            grams = _ngrams(row[:length], n)
            assert len(grams) == len(set(grams)), (name, row)
            assert row[0] == word, (name, row)  # the constraint only acts on repeats
    beam_one = gen.beam(src, max_words=6, beam_size=1, no_repeat_ngram=n)
    assert beam_one.ids.tolist() == outputs["greedy"].ids.tolist()
    torch.testing.assert_close(beam_one.log_prob, outputs["greedy"].log_prob)
    with pytest.raises(ValueError, match="no_repeat_ngram"):
        gen.greedy(src, max_words=6, no_repeat_ngram=-1)


def test_constrained_sample_log_probs_are_the_renormalised_distribution(tok) -> None:
    """REINFORCE's log-probabilities under no_repeat_ngram=1: the model's teacher-forced
    distribution with the words already written removed, renormalised."""
    gen = _generator(tok)
    src = article_batch(tok)
    torch.manual_seed(4)
    s = gen.sample(src, max_words=6, no_repeat_ngram=1)
    tf = gen(src, s.ids).detach()  # (B, S, V')
    for b in range(s.ids.shape[0]):
        for t in range(int(s.lengths[b])):
            logp = tf[b, t].clone()
            seen = s.ids[b, :t].tolist()
            logp[seen] = -float("inf")
            if tok.eos_id in seen:
                continue
            expected = logp[s.ids[b, t]] - torch.logsumexp(logp, dim=0)
            torch.testing.assert_close(s.log_probs[b, t].detach(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("eos_bias", [0.0, 1.5, 3.0])  # </s> often the runner-up
def test_beam_of_size_one_is_greedy(tok, eos_bias) -> None:
    for seed in range(3):
        gen = _generator(tok, seed=seed)
        with torch.no_grad():
            gen.out.bias[tok.eos_id] += eos_bias
        src = article_batch(tok)
        greedy = gen.greedy(src, max_words=6)
        beam = gen.beam(src, max_words=6, beam_size=1)
        assert beam.ids.tolist() == greedy.ids.tolist()
        assert beam.lengths.tolist() == greedy.lengths.tolist()
        torch.testing.assert_close(beam.log_prob, greedy.log_prob)


def test_beam_score_is_the_log_probability_of_what_it_wrote(tok) -> None:
    gen = _generator(tok, seed=1)
    src = article_batch(tok)
    beam = gen.beam(src, max_words=3, beam_size=4, length_penalty=0.0)
    check_decoded(beam, tok.eos_id, tok.pad_id, 3)
    # the beam's score is the teacher-forced log-probability of what it wrote
    tf = gen(src, beam.ids).gather(-1, beam.ids[..., None]).squeeze(-1)
    torch.testing.assert_close(beam.log_prob, tf.masked_fill(~beam.mask, 0).sum(1))


def test_sample_log_probs_and_entropy_match_teacher_forcing(tok) -> None:
    gen = _generator(tok)
    src = article_batch(tok)
    torch.manual_seed(3)
    s = gen.sample(src, max_words=5)
    tf = gen(src, s.ids)  # (B, S, V')
    tf_token = tf.gather(-1, s.ids[..., None]).squeeze(-1)
    torch.testing.assert_close(s.log_probs, tf_token.masked_fill(~s.mask, 0.0))
    tf_entropy = -(tf.exp() * tf).sum(-1)
    torch.testing.assert_close(s.entropy, tf_entropy.masked_fill(~s.mask, 0.0))
    assert s.log_probs.requires_grad and s.entropy.requires_grad
    s.log_probs.sum().backward()
    assert gen.switch.weight.grad is not None and torch.isfinite(gen.switch.weight.grad).all()


def test_a_sampled_summary_feeds_the_reconstructor(tok) -> None:
    gen, rec = _generator(tok), _reconstructor(tok)
    src = article_batch(tok)
    s = gen.sample(src, max_words=5)
    reward = rec.log_likelihood(s, article_targets(tok, src))
    assert reward.shape == (3,) and torch.isfinite(reward).all()


# --------------------------------------------------------------------------------------------
# saving and loading
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [PointerGenerator, Reconstructor])
def test_save_load_round_trip(tok, tmp_path, monkeypatch, cls) -> None:
    torch.manual_seed(0)
    model = cls(vocab_size=tok.vocab_size, emb_dim=8, hidden=8, layers=2).eval()
    src = article_batch(tok)
    inputs = (
        (src, summary_batch(tok, src).ids)
        if cls is PointerGenerator
        else (summary_batch(tok, src), article_targets(tok, src))
    )
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["model_type"] == cls.model_type and saved["config"] == model.config
    loaded = cls.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(*inputs), model(*inputs), rtol=0, atol=0)

    other = Reconstructor if cls is PointerGenerator else PointerGenerator
    with pytest.raises(SavedModelError, match=cls.model_type):
        other.from_pretrained(tmp_path / "m")

    local = Registry(autoload=False)
    local.register("saved_model", cls.model_type, cls)
    monkeypatch.setattr(registry, "get", local.get)
    assert isinstance(load_pretrained(tmp_path / "m"), cls)


@pytest.mark.parametrize("cls", [PointerGenerator, Reconstructor])
def test_registered_for_load_pretrained(cls) -> None:
    try:
        assert registry.get("saved_model", cls.model_type) is cls
    except UnknownComponentError:
        pytest.skip(f"{cls.model_type} is not registered yet (the lead adds it to plugin.py)")


# --------------------------------------------------------------------------------------------
# padding
# --------------------------------------------------------------------------------------------


def test_padding_does_not_change_any_result(tok) -> None:
    gen, rec = _generator(tok), _reconstructor(tok)
    src = article_batch(tok)
    tgt = tok.extend_targets(words_of(tok, SUMMARIES), src.oov_words)
    summary, article = summary_batch(tok, src), article_targets(tok, src)
    batched_lp = gen(src, tgt.extended_ids)
    batched_greedy = gen.greedy(src, max_words=5)
    batched_beam = gen.beam(src, max_words=5, beam_size=3)
    batched_ll = rec.log_likelihood(summary, article)
    for i in range(3):
        one = article_batch(tok, ARTICLES[i : i + 1])
        width = tok.vocab_size + one.max_oovs
        n = int(tgt.lengths[i])
        one_tgt = tgt.extended_ids[i : i + 1, :n]
        torch.testing.assert_close(gen(one, one_tgt)[0], batched_lp[i, :n, :width])
        g = gen.greedy(one, max_words=5)
        assert g.ids[0].tolist() == batched_greedy.ids[i, : batched_greedy.lengths[i]].tolist()
        b = gen.beam(one, max_words=5, beam_size=3)
        assert b.ids[0].tolist() == batched_beam.ids[i, : batched_beam.lengths[i]].tolist()
        one_summary = Summaries(
            summary.ids[i : i + 1, : summary.lengths[i]], summary.lengths[i : i + 1], one.max_oovs
        )
        one_article = article[i : i + 1, : int((article[i] != tok.pad_id).sum())]
        torch.testing.assert_close(
            rec.log_likelihood(one_summary, one_article), batched_ll[i : i + 1]
        )
