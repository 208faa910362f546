"""URNNG (seqae.tree.urnng) and the LSTM language-model baseline (seqae.tree.lm): the ELBO's
gradients against the leave-one-out formula, the ELBO and the importance-weighted bound
against log p(x) by enumeration of every tree, parsing, saving, and short trainings on a toy
corpus."""

from __future__ import annotations

import functools
import math
from importlib.metadata import EntryPoint

import pytest
import torch

from seqae.core.saving import load_pretrained
from seqae.registry import Registry
from seqae.tree.crf import TreeCRF
from seqae.tree.lm import TreeLanguageModel, perplexity
from seqae.tree.trees import indicators_to_actions, indicators_to_spans, spans_to_indicators
from seqae.tree.urnng import URNNG, leave_one_out_advantages

VOCAB = 10
LENGTHS = [3, 5, 1, 4, 2]  # every length 1..5 in one padded batch, unsorted
N = max(LENGTHS)


@functools.cache
def all_trees(i: int, j: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Every binary tree over words i..j as its spans (leaves included)."""
    if i == j:
        return (((i, i),),)
    return tuple(
        ((i, j), *left, *right)
        for k in range(i, j)
        for left in all_trees(i, k)
        for right in all_trees(k + 1, j)
    )


def make(seed: int = 0, **options) -> URNNG:
    torch.manual_seed(seed)
    settings = {
        "vocab_size": VOCAB,
        "embed_dim": 6,
        "hidden_dim": 6,
        "q_embed_dim": 5,
        "q_hidden_dim": 4,
        "q_mlp_dim": 7,
        **options,
    }
    return URNNG(**settings).double().eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(4, VOCAB, (len(LENGTHS), N), generator=gen)
    lengths = torch.tensor(LENGTHS)
    tokens[torch.arange(N) >= lengths[:, None]] = 0
    return tokens, lengths


class Enumerated:
    """Every tree of every sentence, with log q, log p(x, z) and the exact quantities."""

    def __init__(self, model: URNNG, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        self.log_q, self.log_p, self.trees = [], [], []
        crf = model.posterior(tokens, lengths)
        for b, n in enumerate(lengths.tolist()):
            trees = spans_to_indicators(
                all_trees(0, n - 1), [n] * len(all_trees(0, n - 1)), n=N
            ).double()  # (T, N, N)
            log_q = (crf.scores[b] * trees).sum((1, 2)) - crf.log_partition()[b]
            joint = model.joint(tokens[b : b + 1], lengths[b : b + 1], trees[None])
            self.trees.append(trees)
            self.log_q.append(log_q)
            self.log_p.append(joint.log_prob[0])
        self.entropy = crf.entropy()

    def log_px(self) -> torch.Tensor:
        return torch.stack([torch.logsumexp(p, 0) for p in self.log_p])

    def elbo(self) -> torch.Tensor:
        return torch.stack(
            [
                (q.exp() * p).sum() + h
                for q, p, h in zip(self.log_q, self.log_p, self.entropy, strict=True)
            ]
        )

    def kl(self) -> torch.Tensor:
        """KL(q || p(z | x))."""
        return torch.stack(
            [
                (q.exp() * (q - (p - torch.logsumexp(p, 0)))).sum()
                for q, p in zip(self.log_q, self.log_p, strict=True)
            ]
        )


# --------------------------------------------------------------------------------------------
# the objective
# --------------------------------------------------------------------------------------------
def test_leave_one_out_advantages() -> None:
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.5, 0.5, 0.5]])
    want = torch.tensor([[1 - 4.0, 2 - 3.5, 6 - 1.5], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(leave_one_out_advantages(rewards), want)
    torch.testing.assert_close(leave_one_out_advantages(rewards[:, :1]), rewards[:, :1])


def test_joint_scores_each_tree_with_the_rnng(batch) -> None:
    tokens, lengths = batch
    model = make()
    trees = model.posterior(tokens, lengths).sample(3, generator=torch.Generator().manual_seed(0))
    joint = model.joint(tokens, lengths, trees)
    for k in range(3):
        actions = indicators_to_actions(trees[:, k], lengths)
        torch.testing.assert_close(
            joint.log_prob[:, k], model.generative.log_prob(tokens, actions, lengths)
        )


@pytest.mark.parametrize("kl_weight", [1.0, 0.3])
def test_inference_gradient_is_the_leave_one_out_score_function(batch, kl_weight) -> None:
    """d(inference loss)/d(span scores) = -1/B [1/K sum_k A_k (z_k - mu) + w dH/ds], with
    A_k = f_k - mean_{j != k} f_j, f_k = log p(x|z_k) + w log p(z_k) (each z_k scored alone),
    mu the span marginals and dH/ds = -E_q[log q(z) (z - mu)] by enumeration."""
    tokens, lengths = batch
    model = make()
    kept = []
    hook = model.inference.register_forward_hook(lambda m, i, out: kept.append(out) or None)
    out = model.elbo(
        tokens, lengths, samples=4, kl_weight=kl_weight, generator=torch.Generator().manual_seed(5)
    )
    hook.remove()
    (scores,) = kept
    (grad,) = torch.autograd.grad(out.inference_loss, scores)
    crf = TreeCRF(scores.detach(), lengths)
    mu = crf.marginals()
    exact = Enumerated(model, tokens, lengths)
    batch_size, samples = out.trees.shape[:2]
    want = torch.zeros_like(grad)
    for b in range(batch_size):
        f = []
        for k in range(samples):
            actions = indicators_to_actions(out.trees[b : b + 1, k], lengths[b : b + 1])
            with torch.no_grad():
                terms = model.generative(tokens[b : b + 1], actions, lengths[b : b + 1])
            f.append(float(terms.word_log_prob + kl_weight * terms.action_log_prob))
        for k in range(samples):
            advantage = f[k] - (sum(f) - f[k]) / (samples - 1)
            want[b] -= advantage * (out.trees[b, k] - mu[b]) / samples / batch_size
        q = exact.log_q[b].detach()
        dh = -(q.exp()[:, None, None] * q[:, None, None] * (exact.trees[b] - mu[b])).sum(0)
        want[b] -= kl_weight * dh / batch_size
    torch.testing.assert_close(grad, want, rtol=1e-8, atol=1e-10)
    # and the generative loss is the plain mean of -f_k: no gradient into q
    assert torch.autograd.grad(out.generative_loss, scores, allow_unused=True)[0] is None


def test_losses_train_their_own_network(batch) -> None:
    tokens, lengths = batch
    model = make()
    out = model.elbo(tokens, lengths, samples=3, generator=torch.Generator().manual_seed(0))
    out.generative_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in model.inference.parameters())
    assert all(p.grad is not None for p in model.generative.parameters())
    model.zero_grad(set_to_none=True)
    out.inference_loss.backward()
    assert all(p.grad is None for p in model.generative.parameters())
    grads = [p.grad for p in model.inference.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # f_k: words plus the weighted actions, averaged over the samples and the batch
    torch.testing.assert_close(
        out.generative_loss, -(out.log_joint.mean(1)).mean(), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(out.loss, out.generative_loss + out.inference_loss)
    torch.testing.assert_close(out.elbo, out.log_joint.mean(1) + out.entropy)
    torch.testing.assert_close(out.reward_variance, out.log_joint.var(1))


def test_elbo_is_below_log_px_by_the_kl_and_its_estimate_is_unbiased(batch) -> None:
    tokens, lengths = batch
    model = make()
    with torch.no_grad():
        exact = Enumerated(model, tokens, lengths)
        for q in exact.log_q:  # q is normalised over every tree
            torch.testing.assert_close(torch.logsumexp(q, 0), torch.zeros((), dtype=q.dtype))
        entropy = torch.stack([-(q.exp() * q).sum() for q in exact.log_q])
        torch.testing.assert_close(exact.entropy, entropy)
        # ELBO = log p(x) - KL(q || p(z|x)) <= log p(x)
        torch.testing.assert_close(exact.elbo(), exact.log_px() - exact.kl())
        several = torch.tensor(LENGTHS) > 2  # one tree only over one or two words
        assert (exact.kl()[several] > 1e-2).all()
        torch.testing.assert_close(exact.kl()[~several], torch.zeros(2, dtype=torch.float64))
        samples = 4000
        out = model.elbo(
            tokens, lengths, samples=samples, generator=torch.Generator().manual_seed(1)
        )
    stderr = out.log_joint.std(1) / math.sqrt(samples)
    assert ((out.elbo - exact.elbo()).abs() <= 4 * stderr + 1e-9).all(), (out.elbo, exact.elbo())
    assert (out.elbo <= exact.log_px() + 4 * stderr + 1e-9).all()


def test_importance_weighted_nll_approaches_minus_log_px(batch) -> None:
    tokens, lengths = batch
    model = make()
    samples = 4000
    with torch.no_grad():
        exact = Enumerated(model, tokens, lengths)
        log_px = exact.log_px()
        # delta method: sd of log(mean w) ~ sd(w) / (sqrt(S) E[w]), sd(w) exact by enumeration
        second = torch.stack(
            [torch.logsumexp(2 * p - q, 0) for p, q in zip(exact.log_p, exact.log_q, strict=True)]
        )  # log E_q[w^2]
        sd = (torch.exp(second - 2 * log_px) - 1).clamp(min=0).sqrt() / math.sqrt(samples)
        nll = model.importance_weighted_nll(
            tokens, lengths, samples=samples, chunk=1500, generator=torch.Generator().manual_seed(2)
        )
        one = model.importance_weighted_nll(
            tokens, lengths, samples=1, generator=torch.Generator().manual_seed(2)
        )
    assert ((nll + log_px).abs() <= 5 * sd + 1e-9).all(), (nll, -log_px, sd)
    # much closer than the one-sample bound, whose expectation is -ELBO = -log p(x) + KL
    assert ((nll + log_px).abs() < exact.kl() / 5)[torch.tensor(LENGTHS) > 2].all()
    assert one.shape == (len(LENGTHS),) and torch.isfinite(one).all()


def test_parse_returns_trees_of_the_inference_network(batch) -> None:
    tokens, lengths = batch
    model = make()
    crf = model.posterior(tokens, lengths)
    assert torch.equal(model.parse(tokens, lengths, method="argmax"), crf.argmax())
    mbr = model.parse(tokens, lengths)
    assert torch.equal(mbr, crf.mbr())
    spans = indicators_to_spans(mbr, lengths)  # checks each is a binary tree
    assert [len(s) for s in spans] == [2 * n - 1 for n in LENGTHS]
    with pytest.raises(ValueError, match="method must be 'mbr' or 'argmax'"):
        model.parse(tokens, lengths, method="viterbi")


def test_save_and_load_round_trip(batch, tmp_path) -> None:
    tokens, lengths = batch
    model = make(tie_weights=True, layers=2).float()
    model.save_pretrained(tmp_path / "urnng")
    loaded = load_pretrained(tmp_path / "urnng")
    assert isinstance(loaded, URNNG) and loaded.config == model.config
    first, second = (
        m.elbo(tokens, lengths, samples=3, generator=torch.Generator().manual_seed(0))
        for m in (model, loaded)
    )
    assert torch.equal(first.loss, second.loss) and torch.equal(first.elbo, second.elbo)
    assert torch.equal(model.parse(tokens, lengths), loaded.parse(tokens, lengths))


def test_registered_by_the_tree_plugin() -> None:
    registry = Registry(group="seqae.tree_only", autoload=False)
    registry.load_plugins([EntryPoint("tree", "seqae.tree.plugin:register", "seqae.tree_only")])
    model = registry.build("model", {"name": "urnng", "vocab_size": 7, "embed_dim": 4})
    assert isinstance(model, URNNG) and model.generative.embed_dim == 4
    lm = registry.build("model", {"name": "tree_lm", "vocab_size": 7})
    assert isinstance(lm, TreeLanguageModel)
    assert registry.get("saved_model", "urnng") is URNNG
    assert registry.get("saved_model", "tree_lm") is TreeLanguageModel


def test_bad_arguments_are_refused(batch) -> None:
    tokens, lengths = batch
    model = make()
    with pytest.raises(ValueError, match="samples must be a positive int"):
        model.elbo(tokens, lengths, samples=0)
    with pytest.raises(ValueError, match="kl_weight must be in"):
        model.elbo(tokens, lengths, kl_weight=1.5)
    with pytest.raises(ValueError, match="token ids must be in 0..9"):
        model.elbo(tokens + VOCAB, lengths)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        model.importance_weighted_nll(tokens, lengths, chunk=0)
    lm = TreeLanguageModel(vocab_size=VOCAB, embed_dim=4, hidden_dim=4)
    with pytest.raises(ValueError, match="holds the </s> id 3 among its 3 words"):
        lm(torch.tensor([[5, 6, 3]]))
    with pytest.raises(ValueError, match="bos_id must differ"):
        TreeLanguageModel(vocab_size=VOCAB, bos_id=3)


# --------------------------------------------------------------------------------------------
# training on a toy corpus
# --------------------------------------------------------------------------------------------
def toy_corpus() -> tuple[torch.Tensor, torch.Tensor]:
    """Sentences of a tiny grammar: det noun verb (det noun), ids 4..9."""
    det, nouns, verbs = [4], [5, 6], [7, 8, 9]
    rows = []
    for n1 in nouns:
        for v in verbs:
            rows.append([*det, n1, v])
            for n2 in nouns:
                rows.append([*det, n1, v, *det, n2])
    lengths = torch.tensor([len(r) for r in rows])
    tokens = torch.tensor([r + [0] * (5 - len(r)) for r in rows])
    return tokens, lengths


def test_a_tiny_urnng_learns_a_toy_corpus() -> None:
    tokens, lengths = toy_corpus()
    model = make(dropout=0.0).float()

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            return float(model.elbo(tokens, lengths, samples=8, generator=gen).elbo.mean())

    before = evaluate()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    gen = torch.Generator().manual_seed(1)
    for step in range(40):
        model.train()
        out = model.elbo(tokens, lengths, samples=4, kl_weight=min(1.0, step / 10), generator=gen)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = evaluate()
    # a uniform guess over the 9 predictable ids costs 4.5 * log 9 ~ 9.9 nats per sentence;
    # the toy corpus holds log 18 ~ 2.9 nats of choices
    assert after > before + 3.0 and after > -6.5, (before, after)


def test_the_lstm_baseline_learns_a_toy_corpus() -> None:
    tokens, lengths = toy_corpus()
    torch.manual_seed(0)
    lm = TreeLanguageModel(vocab_size=VOCAB, embed_dim=8, hidden_dim=16)
    before = perplexity(-lm.log_prob(tokens, lengths).detach(), lm.predicted_tokens(lengths))
    optimizer = torch.optim.Adam(lm.parameters(), lr=0.03)
    for _ in range(60):
        loss = -lm.log_prob(tokens, lengths).sum() / lm.predicted_tokens(lengths).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = perplexity(-lm.log_prob(tokens, lengths).detach(), lm.predicted_tokens(lengths))
    # best possible: exp(log 18 / mean tokens) ~ 1.6 (choices of 18 sentences over ~5.5 tokens)
    assert before > 7.0 and after < 2.2, (before, after)


# --------------------------------------------------------------------------------------------
# the LSTM baseline
# --------------------------------------------------------------------------------------------
def test_perplexity_is_exp_of_the_mean_nll_per_token() -> None:
    assert perplexity([2.0, 4.0], [3, 1]) == pytest.approx(math.exp(1.5))
    with pytest.raises(ValueError, match="2 NLL values for 1 token counts"):
        perplexity([2.0, 4.0], [3])
    with pytest.raises(ValueError, match="no tokens"):
        perplexity([0.0], [0])


def test_lm_without_eos_is_a_distribution_over_sentences_of_a_length() -> None:
    torch.manual_seed(0)
    lm = TreeLanguageModel(vocab_size=5, embed_dim=4, hidden_dim=4, eos_id=None).double()
    words = [1, 3, 4]  # 0 is padding, 2 is <s>: never predicted
    tokens = torch.cartesian_prod(*[torch.tensor(words)] * 3)
    total = torch.logsumexp(lm.log_prob(tokens), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64))


def test_lm_predicts_eos_after_the_words_and_never_first() -> None:
    torch.manual_seed(0)
    lm = TreeLanguageModel(vocab_size=VOCAB, embed_dim=4, hidden_dim=4, layers=2).double()
    tokens, lengths = toy_corpus()
    terms = lm(tokens, lengths)  # (B, N + 1)
    assert terms.shape == (len(lengths), 6)
    assert torch.equal(lm.predicted_tokens(lengths), lengths + 1)
    # each sentence alone, without padding, gives the same terms
    for b in range(0, len(lengths), 5):
        n = int(lengths[b])
        alone = lm(tokens[b : b + 1, :n])
        torch.testing.assert_close(alone[0], terms[b, : n + 1])
        assert (terms[b, n + 1 :] == 0).all() and (terms[b, : n + 1] < 0).all()
    # the first token's distribution excludes <pad>, <s> and </s>
    inputs = torch.full((1, 1), lm.bos_id)
    states, _ = lm.lstm(lm.embed(inputs))
    first = torch.log_softmax(lm.out(states)[0, 0, [1, 4, 5, 6, 7, 8, 9]], -1)
    torch.testing.assert_close(terms[0, 0], first[1])  # row 0 starts with token 4
