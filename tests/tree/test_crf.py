"""The tree CRF (seqae.tree): the chart algorithms against brute-force enumeration of every
binary tree (lengths 1..7, mixed in one padded batch), the tree conversions, the span scorer
and the ``tree_crf`` bottleneck."""

from __future__ import annotations

import functools
import math
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from scipy.stats import chi2

from seqae.core.base import Bottleneck, NonFiniteInputError
from seqae.registry import Registry
from seqae.tree import inside
from seqae.tree.bottleneck import TreeCRFBottleneck
from seqae.tree.crf import SpanScorer, TreeCRF
from seqae.tree.trees import (
    PAD_ACTION,
    REDUCE,
    SHIFT,
    actions_to_spans,
    brackets_to_spans,
    check_tree,
    indicators_to_actions,
    indicators_to_spans,
    spans_to_actions,
    spans_to_brackets,
    spans_to_indicators,
)

REPO = Path(__file__).resolve().parents[2]
LENGTHS = [7, 1, 2, 5, 3, 6, 4]  # every length 1..7 in one padded batch, unsorted
N = max(LENGTHS)
CATALAN = [1, 1, 2, 5, 14, 42, 132]  # trees over n words: Catalan(n - 1)


# --------------------------------------------------------------------------------------------
# brute force
# --------------------------------------------------------------------------------------------
@functools.cache
def all_trees(i: int, j: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Every binary tree over words i..j, each as its spans (leaves included)."""
    if i == j:
        return (((i, i),),)
    return tuple(
        ((i, j), *left, *right)
        for k in range(i, j)
        for left in all_trees(i, k)
        for right in all_trees(k + 1, j)
    )


def tree_scores(scores: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """Score of every tree of sentence b (differentiable): (number of trees,)."""
    trees = all_trees(0, n - 1)
    index = torch.tensor([[i * N + j for i, j in t] for t in trees])
    return scores[b].reshape(-1)[index].sum(1)


def indicator(spans, n: int = N) -> torch.Tensor:
    out = torch.zeros(n, n, dtype=torch.float64)
    for i, j in spans:
        out[i, j] = 1.0
    return out


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Random float64 span scores for LENGTHS with NaN in the padding (must be ignored)."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(len(LENGTHS), N, N, generator=gen, dtype=torch.float64)
    lengths = torch.tensor(LENGTHS)
    mask = inside.valid_span_mask(lengths, N)
    return torch.where(mask, scores, torch.nan), lengths


def test_all_trees_are_counted_by_catalan_numbers() -> None:
    assert [len(all_trees(0, n - 1)) for n in range(1, 8)] == CATALAN


def test_log_partition_marginals_entropy_match_enumeration(batch) -> None:
    scores, lengths = batch
    crf = TreeCRF(scores, lengths)
    log_z, marginals, entropy = crf.log_partition(), crf.marginals(), crf.entropy()
    assert log_z.shape == entropy.shape == (len(LENGTHS),) and marginals.shape == scores.shape
    for b, n in enumerate(LENGTHS):
        s = tree_scores(crf.scores, b, n)
        p = torch.softmax(s, 0)
        expected = sum(
            (pt * indicator(t) for pt, t in zip(p, all_trees(0, n - 1), strict=True)),
            torch.zeros(N, N, dtype=torch.float64),
        )
        torch.testing.assert_close(log_z[b], torch.logsumexp(s, 0))
        torch.testing.assert_close(marginals[b], expected)
        torch.testing.assert_close(entropy[b], -(p * p.log()).sum())
    # one tree for lengths 1 and 2: probability 1, entropy 0
    assert torch.allclose(entropy[[1, 2]], torch.zeros(2, dtype=torch.float64), atol=1e-12)


def test_gradients_match_enumeration(batch) -> None:
    """d log Z and d H with respect to the scores, and d(marginals) (create_graph)."""
    scores, lengths = batch
    leaf = scores.nan_to_num(0.0).requires_grad_()
    weights = torch.linspace(0.5, 2.0, len(LENGTHS), dtype=torch.float64)
    ours = torch.autograd.grad((weights * TreeCRF(leaf, lengths).entropy()).sum(), leaf)[0]
    marg_w = torch.randn(scores.shape, generator=torch.Generator().manual_seed(1)).double()
    marginals = TreeCRF(leaf, lengths).marginals(create_graph=True)
    ours_marg = torch.autograd.grad((marginals * marg_w).sum(), leaf)[0]
    brute_h, brute_m = [], []
    for b, n in enumerate(LENGTHS):
        p = torch.softmax(tree_scores(leaf, b, n), 0)
        brute_h.append(-(p * p.log()).sum())
        trees = torch.stack([indicator(t) for t in all_trees(0, n - 1)])
        brute_m.append((p[:, None, None] * trees * marg_w[b]).sum())
    expected = torch.autograd.grad((weights * torch.stack(brute_h)).sum(), leaf, retain_graph=True)[
        0
    ]
    expected_marg = torch.autograd.grad(torch.stack(brute_m).sum(), leaf)[0]
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_marg, expected_marg)


def test_log_partition_is_exact_to_second_order() -> None:
    lengths = torch.tensor([4, 1, 3])
    scores = torch.randn(3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    scores.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: inside.log_partition(s, lengths), (scores,))
    assert torch.autograd.gradgradcheck(lambda s: inside.log_partition(s, lengths), (scores,))


def test_argmax_mbr_and_log_prob_match_enumeration(batch) -> None:
    scores, lengths = batch
    crf = TreeCRF(scores, lengths)
    best, mbr, marginals = crf.argmax(), crf.mbr(), crf.marginals()
    picked = torch.stack(
        [indicator(all_trees(0, n - 1)[(b * 7) % CATALAN[n - 1]]) for b, n in enumerate(LENGTHS)]
    )
    log_prob = crf.log_prob(picked)
    for b, n in enumerate(LENGTHS):
        trees = all_trees(0, n - 1)
        s = tree_scores(crf.scores, b, n)
        torch.testing.assert_close(best[b], indicator(trees[int(s.argmax())]))
        gain = torch.stack([sum(marginals[b, i, j] for i, j in t) for t in trees])
        torch.testing.assert_close(mbr[b], indicator(trees[int(gain.argmax())]))
        k = trees.index(tuple(all_trees(0, n - 1)[(b * 7) % CATALAN[n - 1]]))
        torch.testing.assert_close(log_prob[b], torch.log_softmax(s, 0)[k])
    # (B, K, N, N) trees give (B, K) log-probabilities
    two = crf.log_prob(torch.stack([picked, best], dim=1))
    torch.testing.assert_close(two[:, 0], log_prob)


def test_samples_follow_the_tree_distribution(batch) -> None:
    """Chi-square goodness of fit of 20000 samples per sentence against enumeration."""
    scores, lengths = batch
    crf = TreeCRF(scores.nan_to_num(0.0) * 0.5, lengths)  # flatter: every tree gets samples
    k = 20000
    samples = crf.sample(k, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (len(LENGTHS), k, N, N)
    for b, n in enumerate(LENGTHS):
        trees = all_trees(0, n - 1)
        p = torch.softmax(tree_scores(crf.scores, b, n), 0)
        codes = torch.stack([indicator(t).reshape(-1) for t in trees])  # (T, N*N)
        # which enumerated tree each sample is: every sample must be exactly one of them
        match = (samples[b].reshape(k, 1, -1) == codes[None]).all(-1)  # (K, T)
        assert bool((match.sum(1) == 1).all()), f"sentence {b}: a sample is not a binary tree"
        counts = match.sum(0).double()
        if len(trees) == 1:
            continue
        stat = float(((counts - k * p) ** 2 / (k * p)).sum())
        assert chi2.sf(stat, len(trees) - 1) > 1e-3, (n, stat)
        assert 0.5 * float((counts / k - p).abs().sum()) < 0.05


def test_samples_are_reproducible_with_a_generator(batch) -> None:
    crf = TreeCRF(*batch)
    first = crf.sample(4, generator=torch.Generator().manual_seed(5))
    again = crf.sample(4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)


def test_float32_matches_float64(batch) -> None:
    scores, lengths = batch
    wide, narrow = TreeCRF(scores, lengths), TreeCRF(scores.float(), lengths)
    torch.testing.assert_close(narrow.log_partition().double(), wide.log_partition())
    torch.testing.assert_close(narrow.marginals().double(), wide.marginals(), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:.*arg_constraints")
def test_matches_torch_struct_when_installed() -> None:
    torch_struct = pytest.importorskip("torch_struct")
    gen = torch.Generator().manual_seed(4)
    scores = torch.randn(3, 9, 9, dtype=torch.float64, generator=gen)
    lengths = torch.tensor([9, 4, 6])
    crf = TreeCRF(scores, lengths)
    peer = torch_struct.TreeCRF(crf.scores.unsqueeze(-1).clone(), lengths=lengths)
    torch.testing.assert_close(crf.log_partition(), peer.partition)
    torch.testing.assert_close(crf.marginals(), peer.marginals.squeeze(-1))


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lengths", "match"),
    [
        ([3, 0], r"lengths must be in 1\.\.3"),
        ([3, 4], r"lengths must be in 1\.\.3"),
        ([3], "got 1 lengths for a batch of 2"),
        (torch.tensor([3.0, 2.0]), "1-d integer tensor"),
    ],
)
def test_bad_lengths_are_refused(lengths, match) -> None:
    with pytest.raises(ValueError, match=match):
        TreeCRF(torch.zeros(2, 3, 3), lengths)


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError, match=r"shape \(B, N, N\)"):
        TreeCRF(torch.zeros(2, 3, 4))
    with pytest.raises(TypeError, match="floating-point"):
        TreeCRF(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="trees must have shape"):
        TreeCRF(torch.zeros(2, 3, 3)).log_prob(torch.zeros(2, 4, 4))


# --------------------------------------------------------------------------------------------
# tree conversions
# --------------------------------------------------------------------------------------------
def test_every_tree_round_trips_through_actions_and_brackets() -> None:
    for n in range(1, 7):
        words = [f"w{t}" for t in range(n)]
        for tree in all_trees(0, n - 1):
            spans = check_tree(tree, n)
            actions = spans_to_actions(tree, n)
            assert len(actions) == 2 * n - 1 and actions.count(SHIFT) == n
            assert actions_to_spans(actions) == spans
            text = spans_to_brackets(tree, words)
            assert brackets_to_spans(text) == (spans, words)


def test_conversions_on_a_known_tree() -> None:
    spans, words = brackets_to_spans("((the cat) (sat (on mats)))")
    assert words == ["the", "cat", "sat", "on", "mats"]
    assert spans == [(0, 4), (0, 1), (0, 0), (1, 1), (2, 4), (2, 2), (3, 4), (3, 3), (4, 4)]
    S, R = SHIFT, REDUCE
    assert spans_to_actions(spans, 5) == [S, S, R, S, S, S, R, R, R]
    assert brackets_to_spans("word") == ([(0, 0)], ["word"])


def test_batched_actions_match_the_per_tree_actions(batch) -> None:
    scores, lengths = batch
    trees = TreeCRF(scores, lengths).sample(3, generator=torch.Generator().manual_seed(6))
    flat = trees.reshape(-1, N, N)
    flat_lengths = lengths.repeat_interleave(3)
    actions = indicators_to_actions(flat, flat_lengths)
    assert actions.shape == (len(flat), 2 * N - 1)
    for row, spans in enumerate(indicators_to_spans(flat, flat_lengths)):
        n = int(flat_lengths[row])
        expected = spans_to_actions(spans, n) + [PAD_ACTION] * (2 * (N - n))
        assert actions[row].tolist() == expected
    rebuilt = spans_to_indicators(indicators_to_spans(flat, flat_lengths), flat_lengths.tolist())
    assert torch.equal(rebuilt, flat.float())


@pytest.mark.parametrize(
    ("spans", "length", "match"),
    [
        ([(0, 3), (0, 2), (1, 3), (0, 0), (1, 1), (2, 2), (3, 3)], 4, "cross"),
        ([(0, 2), (0, 0), (1, 1), (2, 2)], 3, "has 5 spans, got 4"),
        ([(0, 1), (0, 0)], 2, r"missing \[\(1, 1\)\]"),
        ([(0, 3)], 2, "not inside a sentence of 2 words"),
        ([(0, 0), (0, 0)], 1, "repeated"),
    ],
)
def test_check_tree_names_the_problem(spans, length, match) -> None:
    with pytest.raises(ValueError, match=match):
        check_tree(spans, length)


@pytest.mark.parametrize(
    ("text", "match"),
    [("((a b)", "unbalanced"), ("(a b c)", "exactly two children"), ("(a b) c", "one tree")],
)
def test_bad_brackets_are_refused(text, match) -> None:
    with pytest.raises(ValueError, match=match):
        brackets_to_spans(text)


def test_bad_actions_are_refused() -> None:
    with pytest.raises(ValueError, match="REDUCE at step 1"):
        actions_to_spans([SHIFT, REDUCE])
    with pytest.raises(ValueError, match="2 subtrees"):
        actions_to_spans([SHIFT, SHIFT])


# --------------------------------------------------------------------------------------------
# span scorer
# --------------------------------------------------------------------------------------------
def test_span_scorer_scores_each_sentence_independently_of_padding() -> None:
    torch.manual_seed(0)
    scorer = SpanScorer(vocab_size=20, embed_dim=8, hidden_dim=6, mlp_dim=5).eval()
    tokens = torch.randint(1, 20, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    scores = scorer(tokens, lengths)
    assert scores.shape == (3, 6, 6)
    assert bool((scores[~inside.valid_span_mask(lengths, 6)] == 0).all())
    for b, n in enumerate(lengths.tolist()):
        alone = scorer(tokens[b : b + 1, :n])
        torch.testing.assert_close(scores[b, :n, :n], alone[0], rtol=1e-5, atol=1e-6)
    # trains end to end through the CRF
    scorer.train()
    crf = TreeCRF(scorer(tokens, lengths), lengths)
    loss = -(crf.log_prob(crf.argmax()).sum() + crf.entropy().sum())
    loss.backward()
    assert all(p.grad is not None for p in scorer.lstm.parameters())


def test_span_scorer_refuses_bad_input() -> None:
    scorer = SpanScorer(vocab_size=5, embed_dim=4, hidden_dim=3, mlp_dim=3)
    with pytest.raises(ValueError, match=r"\(B, N\) integer tensor"):
        scorer(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="dropout"):
        SpanScorer(dropout=1.0)


# --------------------------------------------------------------------------------------------
# bottleneck and registration
# --------------------------------------------------------------------------------------------
def test_bottleneck_is_registered_by_the_tree_plugin() -> None:
    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry["seqae.plugins"]["tree"] == "seqae.tree.plugin:register"
    registry = Registry(group="seqae.tree_only", autoload=False)  # the tree plugin alone
    registry.load_plugins([EntryPoint("tree", "seqae.tree.plugin:register", "seqae.tree_only")])
    bottleneck = registry.build("bottleneck", {"name": "tree_crf", "samples": 3})
    assert isinstance(bottleneck, TreeCRFBottleneck) and bottleneck.samples == 3
    assert isinstance(bottleneck, Bottleneck)
    assert isinstance(
        registry.build("encoder", {"name": "span_scorer", "vocab_size": 7}), SpanScorer
    )


def test_bottleneck_output(batch) -> None:
    scores, lengths = batch
    h = scores.nan_to_num(0.0).float().requires_grad_()
    out = TreeCRFBottleneck(samples=4)(h, lengths, generator=torch.Generator().manual_seed(7))
    crf = TreeCRF(h, lengths)
    assert out.z.shape == (len(LENGTHS), 4, N, N)
    assert not out.z.requires_grad and indicators_to_spans(out.z[:, 0], lengths)
    torch.testing.assert_close(out.loss, -crf.entropy().mean())
    torch.testing.assert_close(out.info["log_z"], crf.log_partition().detach())
    torch.testing.assert_close(out.info["log_prob"], crf.log_prob(out.z).detach())
    assert all(not v.requires_grad for v in out.info.values())
    (grad,) = torch.autograd.grad(out.loss, h)
    assert grad.abs().sum() > 0
    # without lengths: every sentence has N words
    full = TreeCRFBottleneck()(h)
    assert full.z.shape == (len(LENGTHS), 1, N, N) and full.z[:, 0].diagonal(0, 1, 2).all()


def test_bottleneck_refuses_nan_inside_a_sentence_only(batch) -> None:
    scores, lengths = batch
    TreeCRFBottleneck()(scores, lengths)  # NaN in the padding only: fine
    bad = scores.clone()
    bad[0, 1, 3] = math.nan
    with pytest.raises(NonFiniteInputError, match="1 NaN"):
        TreeCRFBottleneck()(bad, lengths)
    with pytest.raises(ValueError, match="samples must be a positive int"):
        TreeCRFBottleneck(samples=0)
