"""The compound PCFG (seqae.tree.pcfg): the inside algorithm, span marginals and MBR trees
against brute-force enumeration of every labeled binary tree (tiny grammars, mixed lengths
1..4 in one padded batch), one-word sentences, the model's ELBO, KL, importance-weighted
bound, saving and a short training run on a toy grammar."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch

import seqae
from seqae import registry
from seqae.core import losses
from seqae.core.gaussian import GaussianBottleneck
from seqae.tree.pcfg import (
    CompoundPCFG,
    GrammarRules,
    inside_log_likelihood,
    mbr_trees,
    span_marginals,
)
from seqae.tree.trees import indicators_to_spans

LENGTHS = [4, 1, 3, 2]  # mixed, unsorted, one padded batch
N = max(LENGTHS)
TINY = {"vocab_size": 12, "symbol_dim": 8, "z_dim": 3, "embed_dim": 8, "hidden_dim": 8}


# --------------------------------------------------------------------------------------------
# brute force
# --------------------------------------------------------------------------------------------
@functools.cache
def all_trees(i: int, j: int) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Every binary tree over words i..j as its constituents ``(i, k, j)`` (split after k)."""
    if i == j:
        return ((),)
    return tuple(
        ((i, k, j), *left, *right)
        for k in range(i, j)
        for left in all_trees(i, k)
        for right in all_trees(k + 1, j)
    )


def random_grammar(nt: int, t: int, *, seed: int) -> GrammarRules:
    """A random float64 grammar per sentence of the batch (emissions are log-probabilities of
    the words actually present, so they need not sum to one over T)."""
    gen = torch.Generator().manual_seed(seed)
    batch, s = len(LENGTHS), nt + t
    root = torch.randn(batch, s, generator=gen, dtype=torch.float64).log_softmax(-1)
    rules = torch.randn(batch, nt, s * s, generator=gen, dtype=torch.float64).log_softmax(-1)
    emissions = torch.randn(batch, N, t, generator=gen, dtype=torch.float64) - 1.5
    return GrammarRules(root, rules.view(batch, nt, s, s), emissions)


def brute_force(grammar: GrammarRules, b: int, n: int) -> dict[frozenset, float]:
    """log p(x, tree) of every unlabeled tree of sentence b, summing every labeling: each
    nonterminal of each constituent and each preterminal of each word enumerated."""
    root, rules, emissions = (x[b].tolist() for x in grammar)
    nt = len(rules)
    t = len(emissions[0])
    result = {}
    for tree in all_trees(0, n - 1):
        terms = []
        for tags in itertools.product(range(t), repeat=n):
            words = sum(emissions[i][tags[i]] for i in range(n))
            for labels in itertools.product(range(nt), repeat=len(tree)):
                label = {(i, j): a for (i, _, j), a in zip(tree, labels, strict=True)}
                label.update({(i, i): nt + tags[i] for i in range(n)})
                score = root[label[(0, n - 1)]] + words
                for i, k, j in tree:
                    score += rules[label[(i, j)]][label[(i, k)]][label[(k + 1, j)]]
                terms.append(score)
        spans = frozenset({(i, j) for i, _, j in tree} | {(i, i) for i in range(n)})
        result[spans] = torch.tensor(terms, dtype=torch.float64).logsumexp(0).item()
    return result


def brute_marginals(trees: dict[frozenset, float]) -> tuple[float, torch.Tensor]:
    log_p = torch.tensor(list(trees.values()), dtype=torch.float64).logsumexp(0).item()
    marginals = torch.zeros(N, N, dtype=torch.float64)
    for spans, value in trees.items():
        for i, j in spans:
            marginals[i, j] += math.exp(value - log_p)
    return log_p, marginals


GRAMMARS = [(2, 3, 0), (3, 2, 1), (1, 1, 2)]


@functools.cache
def enumerated(nt: int, t: int, seed: int) -> list[dict[frozenset, float]]:
    grammar = random_grammar(nt, t, seed=seed)
    return [brute_force(grammar, b, n) for b, n in enumerate(LENGTHS)]


# --------------------------------------------------------------------------------------------
# the chart algorithms
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("nt", "t", "seed"), GRAMMARS)
def test_inside_equals_brute_force(nt: int, t: int, seed: int) -> None:
    grammar = random_grammar(nt, t, seed=seed)
    log_p = inside_log_likelihood(grammar, torch.tensor(LENGTHS))
    expected = [brute_marginals(trees)[0] for trees in enumerated(nt, t, seed)]
    torch.testing.assert_close(
        log_p, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize(("nt", "t", "seed"), GRAMMARS)
def test_span_marginals_equal_brute_force(nt: int, t: int, seed: int) -> None:
    marginals = span_marginals(random_grammar(nt, t, seed=seed), torch.tensor(LENGTHS))
    for b, trees in enumerate(enumerated(nt, t, seed)):
        torch.testing.assert_close(marginals[b], brute_marginals(trees)[1], rtol=0, atol=1e-10)


@pytest.mark.parametrize(("nt", "t", "seed"), GRAMMARS)
def test_mbr_is_the_max_expected_recall_tree(nt: int, t: int, seed: int) -> None:
    lengths = torch.tensor(LENGTHS)
    marginals = span_marginals(random_grammar(nt, t, seed=seed), lengths)
    parsed = indicators_to_spans(mbr_trees(marginals, lengths), lengths)
    for b, trees in enumerate(enumerated(nt, t, seed)):
        recall = {spans: sum(marginals[b, i, j].item() for i, j in spans) for spans in trees}
        best = max(recall.values())
        assert recall[frozenset(parsed[b])] == pytest.approx(best, abs=1e-12)
        if sum(value > best - 1e-9 for value in recall.values()) == 1:
            assert frozenset(parsed[b]) == max(recall, key=recall.__getitem__)


def test_gradients_of_the_inside_pass_are_exact() -> None:
    grammar = GrammarRules(*(x.requires_grad_() for x in random_grammar(2, 2, seed=3)))
    lengths = torch.tensor(LENGTHS)
    assert torch.autograd.gradcheck(
        lambda *g: inside_log_likelihood(GrammarRules(*g), lengths), tuple(grammar)
    )


def test_float32_chart_does_not_underflow_on_long_sentences() -> None:
    """30 words of sharp grammars: log p far below float32's smallest probability, as in
    float64 (the chart keeps one scale per span)."""
    gen = torch.Generator().manual_seed(0)
    batch, n, nt, t = 3, 30, 5, 7
    s = nt + t
    grammar = GrammarRules(
        (10 * torch.randn(batch, s, generator=gen)).log_softmax(-1),
        (10 * torch.randn(batch, nt, s * s, generator=gen)).log_softmax(-1).view(batch, nt, s, s),
        (10 * torch.randn(batch, n, t, generator=gen)).log_softmax(-1) - 5,
    )
    lengths = torch.tensor([30, 17, 1])
    log_p = inside_log_likelihood(grammar, lengths)
    exact = inside_log_likelihood(GrammarRules(*(x.double() for x in grammar)), lengths)
    assert exact[0] < -150  # p(x) far below float32's smallest positive number (1e-45)
    assert torch.isfinite(log_p).all()
    torch.testing.assert_close(log_p.double(), exact, rtol=1e-5, atol=0)


def test_inside_refuses_inconsistent_shapes() -> None:
    root, rules, emissions = random_grammar(2, 3, seed=0)
    with pytest.raises(ValueError, match="rules must be"):
        inside_log_likelihood(GrammarRules(root[:, :4], rules, emissions), torch.tensor(LENGTHS))


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
def batch_of(
    lengths: list[int], *, vocab: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (len(lengths), max(lengths)), generator=gen)
    lengths_t = torch.tensor(lengths)
    tokens[torch.arange(max(lengths))[None, :] >= lengths_t[:, None]] = 0  # padding id 0
    return tokens, lengths_t


@pytest.fixture(scope="module")
def model() -> CompoundPCFG:
    torch.manual_seed(0)
    return CompoundPCFG(nonterminals=3, preterminals=4, **TINY)


def test_grammar_is_normalised(model: CompoundPCFG) -> None:
    z = torch.randn(2, model.z_dim)
    every_word = torch.arange(model.vocab_size).expand(2, -1)  # one sentence holding the vocabulary
    root, rules, emissions = model.grammar(z, every_word)
    ones = torch.ones(2)
    torch.testing.assert_close(root.exp().sum(-1), ones)
    torch.testing.assert_close(rules.exp().sum((-2, -1)), torch.ones(2, model.nonterminals))
    torch.testing.assert_close(emissions.exp().sum(1), torch.ones(2, model.preterminals))
    s = model.nonterminals + model.preterminals
    assert root.shape == (2, s) and rules.shape == (2, model.nonterminals, s, s)


def test_one_word_sentences_use_root_to_preterminal(model: CompoundPCFG) -> None:
    """Convention: a one-word sentence is S -> T -> word with S -> A ranging over every
    symbol; longer sentences in the same batch are unaffected."""
    tokens, lengths = batch_of([1, 3, 1])
    z = torch.randn(3, model.z_dim)
    root, _, emissions = model.grammar(z, tokens)
    log_p = model.log_likelihood(tokens, lengths, z)
    nt = model.nonterminals
    for b in (0, 2):
        torch.testing.assert_close(log_p[b], (root[b, nt:] + emissions[b, 0]).logsumexp(0))
    alone = model.log_likelihood(tokens[1:2], lengths[1:2], z[1:2])
    torch.testing.assert_close(log_p[1:2], alone)
    assert model.parse(tokens, lengths)[0] == [(0, 0)]
    single = model.span_marginals(tokens[:1, :1], torch.tensor([1]))
    assert single.tolist() == [[[1.0]]]
    out = model(tokens[[0, 2], :1])  # a batch of one-word sentences only (N = 1)
    assert torch.isfinite(out.loss)


def test_forward_and_backward_are_finite(model: CompoundPCFG) -> None:
    tokens, lengths = batch_of([5, 1, 3, 2, 4])
    model.train()
    model.zero_grad()
    out = model(tokens, lengths)
    assert out.nll.shape == out.kl.shape == out.elbo.shape == (5,)
    assert torch.isfinite(out.loss) and (out.nll > 0).all()
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for name in ("rule_mlp.weight", "root_embedding", "emission_mlp.0.weight", "lstm.weight_hh_l0"):
        assert grads[name].abs().sum() > 0, name
    model.zero_grad()


def test_kl_comes_from_the_gaussian_bottleneck(model: CompoundPCFG) -> None:
    tokens, lengths = batch_of([4, 2, 3])
    assert isinstance(model.bottleneck, GaussianBottleneck)
    model.train()
    torch.manual_seed(5)
    out = model(tokens, lengths)
    torch.manual_seed(5)
    expected = model.bottleneck(model.features(tokens, lengths))
    torch.testing.assert_close(out.kl_loss, expected.loss)
    torch.testing.assert_close(out.z, expected.z)
    mu, logvar = model.bottleneck.posterior(model.features(tokens, lengths))
    kl = losses.kl_normal_std(mu, logvar, reduction="none").sum(-1)
    torch.testing.assert_close(out.kl, kl.detach())
    torch.testing.assert_close(out.loss, out.nll.mean() + out.kl_loss)
    torch.testing.assert_close(out.elbo, -out.nll.detach() - out.kl)
    # the bottleneck's own options act on the loss: free bits clamp it from below
    model.bottleneck.free_bits = 3.0
    try:
        assert model(tokens, lengths).kl_loss.item() >= 3.0 * model.z_dim - 1e-5
    finally:
        model.bottleneck.free_bits = 0.0
    model.eval()
    torch.testing.assert_close(model(tokens, lengths).z, mu)


def test_importance_weighted_nll_reproduces_its_weights(model: CompoundPCFG) -> None:
    tokens, lengths = batch_of([4, 1, 3])
    model.eval()
    nll = model.importance_weighted_nll(
        tokens, lengths, samples=3, generator=torch.Generator().manual_seed(7)
    )
    mu, logvar = model.bottleneck.posterior(model.features(tokens, lengths))
    eps = torch.randn((3, *mu.shape), generator=torch.Generator().manual_seed(7))
    log_w = []
    for k in range(3):
        z = mu + torch.exp(0.5 * logvar) * eps[k]
        prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        posterior = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        log_w.append(model.log_likelihood(tokens, lengths, z) + prior - posterior)
    expected = -(torch.stack(log_w).logsumexp(0) - math.log(3))
    torch.testing.assert_close(nll, expected.detach(), rtol=1e-5, atol=1e-5)
    # chunking the samples does not change the estimator's form
    many = model.importance_weighted_nll(tokens, lengths, samples=5, chunk=2)
    assert many.shape == (3,) and torch.isfinite(many).all()


def test_bad_input_is_refused(model: CompoundPCFG) -> None:
    tokens, lengths = batch_of([3, 2])
    with pytest.raises(ValueError, match="token ids must be in 0..11"):
        model(tokens + 20, lengths)
    with pytest.raises(ValueError, match="lengths must be in 1..3"):
        model(tokens, torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="integer tensor"):
        model(tokens.float(), lengths)
    with pytest.raises(ValueError, match="nonterminals must be a positive int"):
        CompoundPCFG(nonterminals=0)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        model.importance_weighted_nll(tokens, lengths, chunk=0)
    with pytest.raises(ValueError, match="samples must be a positive int, got True"):
        model.importance_weighted_nll(tokens, lengths, samples=True)


def test_predicted_tokens_count_the_end_of_sentence_as_the_lstm_lm_does(
    model: CompoundPCFG,
) -> None:
    from seqae.tree.lm import TreeLanguageModel

    lengths = torch.tensor(LENGTHS)
    lm = TreeLanguageModel(vocab_size=TINY["vocab_size"], embed_dim=4, hidden_dim=4, eos_id=3)
    assert torch.equal(model.predicted_tokens(lengths), lm.predicted_tokens(lengths))
    assert torch.equal(model.predicted_tokens(lengths), lengths + 1)


def test_save_and_load_give_the_same_model(model: CompoundPCFG, tmp_path) -> None:
    tokens, lengths = batch_of([4, 1, 3])
    model.eval()
    model.save_pretrained(tmp_path / "pcfg")
    loaded = CompoundPCFG.from_pretrained(tmp_path / "pcfg")
    through_registry = seqae.load_pretrained(tmp_path / "pcfg")
    assert isinstance(through_registry, CompoundPCFG)
    for other in (loaded, through_registry):
        assert other.config == model.config
        other.eval()
        assert other.state_dict().keys() == model.state_dict().keys()
        for name, value in model.state_dict().items():
            assert torch.equal(other.state_dict()[name], value), name
        assert torch.equal(other(tokens, lengths).nll, model(tokens, lengths).nll)
        assert other.parse(tokens, lengths) == model.parse(tokens, lengths)
    built = registry.build("model", {"name": "compound_pcfg", **model.config})
    assert isinstance(built, CompoundPCFG) and built.config == model.config


# --------------------------------------------------------------------------------------------
# training on a toy grammar
# --------------------------------------------------------------------------------------------
def toy_corpus() -> tuple[torch.Tensor, torch.Tensor]:
    """Every sentence of S -> NP VP, NP -> Det N, VP -> V | V NP (126 sentences, 3 or 5
    words, 10 word types)."""
    det, noun, verb = ["the", "a"], ["dog", "cat", "bird"], ["sees", "chases", "likes"]
    vocab = {w: i for i, w in enumerate(det + noun + verb + ["<pad>"])}
    sentences = [
        [d, n, v, *obj]
        for d in det
        for n in noun
        for v in verb
        for obj in [[], *([d2, n2] for d2 in det for n2 in noun)]
    ]
    tokens = torch.full((len(sentences), 5), vocab["<pad>"])
    for b, words in enumerate(sentences):
        tokens[b, : len(words)] = torch.tensor([vocab[w] for w in words])
    return tokens, torch.tensor([len(words) for words in sentences])


def test_training_increases_the_elbo() -> None:
    tokens, lengths = toy_corpus()
    torch.manual_seed(0)
    model = CompoundPCFG(
        vocab_size=9,
        nonterminals=4,
        preterminals=4,
        symbol_dim=16,
        z_dim=2,
        embed_dim=16,
        hidden_dim=16,
    )
    model.train()

    def elbo() -> float:
        torch.manual_seed(123)  # the same draws of z before and after training
        with torch.no_grad():
            return model(tokens, lengths).elbo.mean().item()

    before = elbo()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        rows = torch.randperm(len(tokens), generator=gen)[:32]
        loss = model(tokens[rows], lengths[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = elbo()
    # a random grammar gives about -16 nats per sentence; the corpus is 126 equally likely
    # sentences, so no model has an average log-likelihood above -log(126) = -4.84
    assert after > before + 3.0 and after > -6.0, (before, after)
