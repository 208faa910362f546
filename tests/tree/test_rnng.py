"""The generative RNNG (seqae.tree.rnng): the batched stack LSTM against a per-sentence,
per-action reference written with Python lists, the forced actions, normalisation over every
sentence and tree, gradients, saving and input checks."""

from __future__ import annotations

import itertools
import math
from importlib.metadata import EntryPoint

import pytest
import torch
from torch.nn import functional as F

from seqae.core.saving import load_pretrained
from seqae.registry import Registry
from seqae.tree.rnng import RNNG
from seqae.tree.trees import PAD_ACTION, REDUCE, SHIFT

VOCAB = 9  # ids 0 (pad) .. 8; 3 (or 8) is </s> when eos_id is set: words are 1 and 4..7


def tree_actions(n: int, depth: int = 0, shifted: int = 0) -> list[list[int]]:
    """Every SHIFT/REDUCE sequence that builds one binary tree over n words (from a stack of
    ``depth`` subtrees after ``shifted`` words)."""
    if shifted == n and depth == 1:
        return [[]]
    out = []
    if shifted < n:
        out += [[SHIFT, *rest] for rest in tree_actions(n, depth + 1, shifted + 1)]
    if depth >= 2:
        out += [[REDUCE, *rest] for rest in tree_actions(n, depth - 1, shifted)]
    return out


def padded_actions(sequences: list[list[int]], n: int) -> torch.Tensor:
    return torch.tensor([s + [PAD_ACTION] * (2 * n - 1 - len(s)) for s in sequences])


def padded_tokens(rows: list[list[int]], n: int) -> torch.Tensor:
    return torch.tensor([r + [0] * (n - len(r)) for r in rows])


def reference(model: RNNG, words: list[int], actions: list[int]) -> tuple[float, float]:
    """(word, action) log-probabilities of one sentence, one action at a time, with Python
    lists as the stacks."""
    eos = model.eos_id is not None
    words = words + [model.eos_id] * eos
    actions = actions + [SHIFT] * eos
    emb = model.embed(torch.tensor(words))
    zero = emb.new_zeros(1, model.layers, model.hidden_dim)
    states = [model.stack_lstm(model.start[None], (zero, zero))]  # one per stack depth
    subtrees: list[tuple[torch.Tensor, torch.Tensor]] = []
    word_lp = action_lp = emb.new_zeros(())
    pointer = 0
    for action in actions:
        context = states[-1][0][:, -1]  # (1, H)
        if len(subtrees) >= 2 and pointer < len(words):  # both actions possible
            logit = model.action_head(context)[0, 0]
            action_lp = action_lp + F.logsigmoid(logit if action == REDUCE else -logit)
        if action == SHIFT:
            logits = model.word_logits(context)[0].clone()
            logits[model.pad_id] = -math.inf
            if eos and len(subtrees) != 1:
                logits[model.eos_id] = -math.inf
            word_lp = word_lp + torch.log_softmax(logits, -1)[words[pointer]]
            new = (emb[pointer : pointer + 1], torch.zeros_like(emb[:1]))
            pointer += 1
        else:
            right, left = subtrees.pop(), subtrees.pop()
            del states[-2:]
            new = model.compose(left, right)
        subtrees.append(new)
        states.append(model.stack_lstm(new[0], states[-1]))
    return word_lp, action_lp


def make(seed: int = 0, **options) -> RNNG:
    torch.manual_seed(seed)
    settings = {"vocab_size": VOCAB, "embed_dim": 6, "hidden_dim": 5, "layers": 2, **options}
    return RNNG(**settings).double().eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list, list]:
    """Mixed lengths (1..5, unsorted), a random tree each, padded to width 6."""
    gen = torch.Generator().manual_seed(1)
    lengths = [4, 1, 5, 2, 3, 5]
    n = 6
    words = [torch.randint(4, VOCAB - 1, (k,), generator=gen).tolist() for k in lengths]
    words[2][1] = 1  # <unk> is a word like the others
    acts = []
    for k in lengths:
        choices = tree_actions(k)
        acts.append(choices[int(torch.randint(len(choices), (1,), generator=gen))])
    return padded_tokens(words, n), padded_actions(acts, n), torch.tensor(lengths), words, acts


@pytest.mark.parametrize(
    "options",
    [{}, {"eos_id": None}, {"tie_weights": True, "embed_dim": 5}, {"layers": 1, "eos_id": 8}],
    ids=["eos", "no-eos", "tied", "one-layer"],
)
def test_batched_log_prob_matches_the_per_action_reference(batch, options) -> None:
    tokens, actions, lengths, words, acts = batch
    model = make(**options)
    out = model(tokens, actions, lengths)
    grads = torch.autograd.grad(out.log_prob.sum(), list(model.parameters()))
    ref_words, ref_actions = zip(
        *(reference(model, w, a) for w, a in zip(words, acts, strict=True)), strict=True
    )
    ref_words, ref_actions = torch.stack(ref_words), torch.stack(ref_actions)
    torch.testing.assert_close(out.word_log_prob, ref_words, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.action_log_prob, ref_actions, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.log_prob, ref_words + ref_actions)
    assert torch.equal(model.log_prob(tokens, actions, lengths), out.log_prob)
    ref_grads = torch.autograd.grad((ref_words + ref_actions).sum(), list(model.parameters()))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_a_sentence_does_not_depend_on_its_batch_or_padding(batch) -> None:
    tokens, actions, lengths, words, acts = batch
    model = make()
    together = model.log_prob(tokens, actions, lengths)
    for b, (w, a) in enumerate(zip(words, acts, strict=True)):
        alone = model.log_prob(padded_tokens([w], len(w)), padded_actions([a], len(w)))
        torch.testing.assert_close(alone[0], together[b], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eos", [True, False])
def test_only_free_actions_are_scored(eos) -> None:
    """With p(REDUCE) = sigmoid(b) everywhere, the action term counts the free choices:
    REDUCE is forced once every word (and </s>) is out, SHIFT below two subtrees."""
    model = make(eos_id=3 if eos else None)
    with torch.no_grad():
        model.action_head.weight.zero_()
        model.action_head.bias.fill_(0.7)
    reduce, shift = F.logsigmoid(torch.tensor(0.7)), F.logsigmoid(torch.tensor(-0.7))
    tokens = torch.tensor([[4, 5, 6], [4, 5, 6]])
    left = [SHIFT, SHIFT, REDUCE, SHIFT, REDUCE]  # ((a b) c)
    right = [SHIFT, SHIFT, SHIFT, REDUCE, REDUCE]  # (a (b c))
    out = model(tokens, torch.tensor([left, right]))
    # ((a b) c): a free REDUCE at step 2; the last REDUCE is free only while </s> is to come
    # (a (b c)): a free SHIFT at step 2, then REDUCEs free only while </s> is to come
    want = torch.stack([reduce * (1 + eos), shift + reduce * (2 * eos)]).double()
    torch.testing.assert_close(out.action_log_prob, want)
    # the trees differ: so do the word terms (the stack differs when c is predicted)
    assert not torch.allclose(out.word_log_prob[0], out.word_log_prob[1])


def test_without_eos_it_is_a_distribution_over_sentences_and_trees_of_a_length() -> None:
    model = make(eos_id=None, vocab_size=4)  # words 1, 2, 3 (0 is padding)
    n = 3
    sentences = list(itertools.product([1, 2, 3], repeat=n))
    trees = tree_actions(n)
    tokens = torch.tensor([s for s in sentences for _ in trees])
    actions = torch.tensor([t for _ in sentences for t in trees])
    total = torch.logsumexp(model.log_prob(tokens, actions), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64))


def test_every_parameter_gets_a_finite_gradient(batch) -> None:
    tokens, actions, lengths, _, _ = batch
    model = make(tie_weights=True, embed_dim=5).train()
    model.drop.p = 0.1
    model.log_prob(tokens, actions, lengths).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_save_and_load_round_trip(batch, tmp_path) -> None:
    tokens, actions, lengths, _, _ = batch
    model = make(tie_weights=True, embed_dim=5).float()
    model.save_pretrained(tmp_path / "rnng")
    again = RNNG.from_pretrained(tmp_path / "rnng")
    assert again.config == model.config and again.tie_weights
    assert torch.equal(
        again(tokens, actions, lengths).log_prob, model(tokens, actions, lengths).log_prob
    )
    loaded = load_pretrained(tmp_path / "rnng")  # through the registry's saved_model kind
    assert isinstance(loaded, RNNG)
    assert torch.equal(
        loaded.log_prob(tokens, actions, lengths), model.log_prob(tokens, actions, lengths)
    )


def test_registered_by_the_tree_plugin() -> None:
    registry = Registry(group="seqae.tree_only", autoload=False)
    registry.load_plugins([EntryPoint("tree", "seqae.tree.plugin:register", "seqae.tree_only")])
    model = registry.build("model", {"name": "rnng", "vocab_size": 7, "embed_dim": 4})
    assert isinstance(model, RNNG) and model.vocab_size == 7 and model.embed_dim == 4
    assert registry.get("saved_model", "rnng") is RNNG


@pytest.mark.parametrize(
    "actions, match",
    [
        ([[SHIFT, REDUCE, SHIFT]], "one binary tree"),  # REDUCE with one subtree
        ([[SHIFT, SHIFT, SHIFT]], "one binary tree"),  # two subtrees left (2 words: width 3)
        ([[SHIFT, SHIFT, 2]], "one binary tree"),  # unknown action
        ([[SHIFT, SHIFT, REDUCE, PAD_ACTION, PAD_ACTION]], r"shape \(1, 3\)"),
    ],
)
def test_bad_actions_are_refused(actions, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()(torch.tensor([[4, 5]]), torch.tensor(actions))


def test_bad_tokens_and_settings_are_refused() -> None:
    model = make()
    tree = torch.tensor([[SHIFT, SHIFT, REDUCE]])
    with pytest.raises(ValueError, match="token ids must be in 0..8"):
        model(torch.tensor([[4, VOCAB]]), tree)
    with pytest.raises(ValueError, match="row 0 holds the pad id 0 among its 2 words"):
        model(torch.tensor([[4, 0]]), tree)
    with pytest.raises(ValueError, match=r"holds the </s> id 3 among .* words only"):
        model(torch.tensor([[4, 3]]), tree)
    with pytest.raises(ValueError, match="lengths must be in 1..2"):
        model(torch.tensor([[4, 5]]), tree, torch.tensor([3]))
    with pytest.raises(ValueError, match="PAD_ACTION"):  # actions past the sentence
        model(torch.tensor([[4, 5]]), tree, torch.tensor([1]))
    with pytest.raises(ValueError, match="tie_weights needs embed_dim == hidden_dim"):
        RNNG(vocab_size=9, embed_dim=4, hidden_dim=5, tie_weights=True)
    with pytest.raises(ValueError, match="eos_id must be an id in 0..8"):
        RNNG(vocab_size=9, eos_id=9)
    with pytest.raises(ValueError, match="eos_id and pad_id must differ"):
        RNNG(vocab_size=9, eos_id=0)
