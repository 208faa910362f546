"""Straight-through Gumbel-softmax summaries (the SEQ^3 ablation of summary_ae): the relaxed
one-hots are exactly the sampled tokens forward, the tokens follow the model's distribution,
the reconstructor and the discriminator read them with a gradient for the writer (and the
discriminator's adversarial term leaves its own weights alone), and a toy writer learns
through them."""

from __future__ import annotations

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.core.losses import token_cross_entropy  # noqa: E402
from seqae.text.discriminator import PrefixDiscriminator  # noqa: E402
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.seq2seq import Summaries, embed_soft  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402

TEXTS = [
    "the cat sat on the mat .",
    "the dog sat on the mat .",
    "a cat and a dog ran to the park .",
]
ARTICLES = ["the zebra sat on the mat .", "a dog ran to the park .", "the quokka sat ."]
SIZES = {"emb_dim": 8, "hidden": 8}


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.train(TEXTS, vocab_size=100, min_frequency=1)


def _src(tok: WordTokenizer):
    return tok.extend_batch([tok.tokenize(t).words for t in ARTICLES])


def _generator(tok: WordTokenizer, seed: int = 0) -> PointerGenerator:
    torch.manual_seed(seed)
    return PointerGenerator(vocab_size=tok.vocab_size, **SIZES)


def test_soft_is_the_one_hot_of_the_sampled_ids_forward(tok) -> None:
    gen = _generator(tok).eval()
    torch.manual_seed(1)
    out = gen.gumbel_sample(_src(tok), max_words=5, tau=0.5)
    assert out.soft is not None and out.soft.shape[:2] == out.ids.shape
    width = out.soft.shape[-1]
    assert width == tok.vocab_size + _src(tok).max_oovs
    one_hot = torch.nn.functional.one_hot(out.ids, width).float() * out.mask[..., None]
    assert torch.allclose(out.soft, one_hot, atol=1e-6)
    assert out.soft.requires_grad
    # the ids end at </s> or the limit, like sample's
    assert int(out.lengths.max()) <= 6
    with pytest.raises(ValueError, match="tau"):
        gen.gumbel_sample(_src(tok), max_words=5, tau=0.0)


def test_the_gumbel_max_tokens_follow_the_models_distribution(tok) -> None:
    """The first token's frequencies over many draws match the model's probabilities."""
    gen = _generator(tok, seed=3).eval()
    words = tok.tokenize(ARTICLES[0]).words  # holds an out-of-vocabulary word
    one, many = tok.extend_batch([words]), tok.extend_batch([words] * 4000)
    with torch.no_grad():  # the first step's distribution, from teacher forcing
        probs = gen(one, torch.tensor([[tok.eos_id]])).exp()[0, 0]
        torch.manual_seed(0)
        first = gen.gumbel_sample(many, max_words=1, tau=1.0).ids[:, 0]
    counts = torch.bincount(first, minlength=probs.numel()).float() / first.numel()
    top = probs.topk(3).indices
    assert torch.allclose(counts[top], probs[top], atol=0.03), (counts[top], probs[top])


def test_the_reconstructor_reads_soft_summaries_as_their_tokens_with_a_gradient(tok) -> None:
    gen = _generator(tok).train()
    torch.manual_seed(2)
    rec = Reconstructor(vocab_size=tok.vocab_size, **SIZES).eval()
    src = _src(tok)
    article = tok.extend_targets([tok.tokenize(t).words for t in ARTICLES], src.oov_words)
    torch.manual_seed(4)
    sample = gen.gumbel_sample(src, max_words=4, tau=1.0)
    hard = Summaries(sample.ids, sample.lengths, sample.max_oovs)
    soft_out = rec(sample, article.extended_ids)
    assert torch.allclose(soft_out, rec(hard, article.extended_ids), atol=1e-5)
    loss = token_cross_entropy(
        soft_out, rec.score_targets(sample, article.extended_ids), pad_id=tok.pad_id
    )
    loss.backward()
    grads = [p.grad for p in gen.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # a hard sample carries no gradient to the writer through the reconstructor
    gen.zero_grad()
    plain = gen.sample(src, max_words=4)
    token_cross_entropy(
        rec(plain, article.extended_ids),
        rec.score_targets(plain, article.extended_ids),
        pad_id=tok.pad_id,
    ).backward()
    assert all(p.grad is None for p in gen.parameters())


def test_the_discriminator_reads_soft_summaries_and_keeps_its_weights_out(tok) -> None:
    gen = _generator(tok).train()
    torch.manual_seed(5)
    disc = PrefixDiscriminator(vocab_size=tok.vocab_size, embedding_dim=8, hidden_size=8).eval()
    torch.manual_seed(6)
    sample = gen.gumbel_sample(_src(tok), max_words=4, tau=1.0)
    assert torch.allclose(
        disc(sample.ids, sample.lengths, soft=sample.soft), disc(sample.ids, sample.lengths)
    )
    disc.generator_loss(sample.ids, sample.lengths, sample.soft).backward()
    assert all(p.grad is None for p in disc.parameters())
    assert sum(float(p.grad.abs().sum()) for p in gen.parameters() if p.grad is not None) > 0


def test_embed_soft_of_a_one_hot_is_the_tokens_embedding_and_oov_reads_as_unk() -> None:
    emb = torch.nn.Embedding(5, 3)
    soft = torch.nn.functional.one_hot(torch.tensor([[2, 6]]), 7).float()  # 6: extended id
    x = embed_soft(emb, soft, unk_id=1)
    assert torch.allclose(x[0, 0], emb.weight[2]) and torch.allclose(x[0, 1], emb.weight[1])


def test_a_toy_writer_learns_a_preferred_token_through_the_relaxation(tok) -> None:
    """Gradient descent on -(the one-hots' weight on one token) makes the writer write it."""
    gen = _generator(tok, seed=7).train()
    target = tok.words_to_ids(["park"])[0]
    src = _src(tok)
    optimizer = torch.optim.Adam(gen.parameters(), lr=0.05)

    def share() -> float:
        with torch.no_grad():
            out = gen.eval().greedy(src, max_words=4)
        gen.train()
        return float(((out.ids == target) & out.mask).float().sum() / out.mask.sum())

    before = share()
    torch.manual_seed(8)
    for _ in range(60):
        sample = gen.gumbel_sample(src, max_words=4, tau=1.0)
        loss = -(sample.soft[..., target] * sample.mask).sum() / sample.mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert before < 0.5 < share()
