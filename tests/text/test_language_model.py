"""The held-out summary language model: it learns a toy grammar, prefers real word order to
shuffled, reads out-of-vocabulary ids as <unk>, trains deterministically, saves and loads in the
one format, and refuses bad settings."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae import registry  # noqa: E402
from seqae.core.saving import SavedModelError, load_pretrained  # noqa: E402
from seqae.registry import Registry, UnknownComponentError  # noqa: E402
from seqae.text.language_model import (  # noqa: E402
    SummaryLanguageModel,
    perplexity,
    sequence_nll,
    train_language_model,
)
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402

ADJECTIVES = ["big", "small", "red", "old"]
NOUNS = ["cat", "dog", "bird", "fox"]
VERBS = ["sees", "likes", "chases"]
SIZES = {"emb_dim": 16, "hidden": 32, "layers": 1, "dropout": 0.0}
TRAINING = {"batch_size": 16, "lr": 1e-2, "seed": 0}


def _grammar() -> tuple[list[str], list[str]]:
    """Sentences "the ADJ NOUN VERB the NOUN ." split into disjoint training and held-out sets."""
    sentences = [
        f"the {a} {n} {v} the {m} ."
        for a, n, v, m in itertools.product(ADJECTIVES, NOUNS, VERBS, NOUNS)
    ]
    random.Random(0).shuffle(sentences)
    return sentences[:120], sentences[120:160]


@pytest.fixture(scope="module")
def data() -> tuple[WordTokenizer, list[list[str]], list[str]]:
    train, held_out = _grammar()
    tok = WordTokenizer.train(train, vocab_size=100, min_frequency=1)
    return tok, [tok.tokenize(s).words for s in train], held_out


@pytest.fixture(scope="module")
def trained(data) -> SummaryLanguageModel:
    tok, words, _ = data
    return train_language_model(tok, words, **SIZES, steps=100, **TRAINING)


def _shuffled(sentences: list[str]) -> list[str]:
    out = []
    for i, sentence in enumerate(sentences):
        words = sentence.split()
        random.Random(i).shuffle(words)
        out.append(" ".join(words))
    return out


def test_learns_the_grammar(data, trained) -> None:
    tok, words, held_out = data
    untrained = train_language_model(tok, words, **SIZES, steps=0, **TRAINING)
    uniform = tok.vocab_size - 2  # <pad> and <s> are never predicted
    before = perplexity(untrained, tok, held_out)
    after = perplexity(trained, tok, held_out)
    # the grammar branches 4 ways at most (adjective, noun) and 1 way elsewhere
    assert after < 0.25 * uniform
    assert after < 0.25 * before
    assert after < 3.0


def test_real_order_beats_shuffled(data, trained) -> None:
    tok, _, held_out = data
    assert perplexity(trained, tok, held_out) * 10 < perplexity(trained, tok, _shuffled(held_out))


def test_perplexity_is_exp_of_nats_per_token(data, trained) -> None:
    tok, _, held_out = data
    texts = [held_out[0], "the cat", ""]  # an empty text is just </s>
    rows = [tok.words_to_ids(tok.tokenize(t).words) + [tok.eos_id] for t in texts]
    nll = 0.0
    with torch.no_grad():
        for row in rows:  # one text at a time, no padding
            nll += float(trained.nll(torch.tensor([row]), torch.tensor([len(row)])).sum())
    expected = math.exp(nll / sum(len(r) for r in rows))
    assert perplexity(trained, tok, texts, batch_size=8) == pytest.approx(expected, rel=1e-6)
    # word lists and texts give the same, and batching does not change it
    word_lists = [tok.tokenize(t).words for t in texts]
    assert perplexity(trained, tok, word_lists, batch_size=1) == pytest.approx(expected, rel=1e-6)
    out = sequence_nll(trained, tok, texts)
    assert out.tokens.tolist() == [len(r) for r in rows]
    assert out.nll[2] == pytest.approx(
        float(trained.nll(torch.tensor([[tok.eos_id]]), torch.tensor([1])).detach()), rel=1e-6
    )


def test_out_of_vocabulary_ids_read_as_unk(data, trained) -> None:
    tok, _, _ = data
    ids = torch.tensor([[4, tok.vocab_size + 3, 5, tok.eos_id]])
    as_unk = ids.masked_fill(ids >= tok.vocab_size, tok.unk_id)
    lengths = torch.tensor([4])
    torch.testing.assert_close(
        trained.token_log_probs(ids, lengths), trained.token_log_probs(as_unk, lengths)
    )
    # an unseen word in a text is <unk>, like the id of <unk>
    assert perplexity(trained, tok, ["the zebra sees"]) == pytest.approx(
        perplexity(trained, tok, [["the", "<unk>", "sees"]]), rel=1e-6
    )


def test_padding_does_not_change_a_text(trained) -> None:
    short = torch.tensor([[5, 6, 3, 0, 0]])
    longer = torch.tensor([[5, 6, 3, 0, 0], [7, 8, 9, 10, 3]])
    alone = trained.nll(short, torch.tensor([3]))
    batched = trained.nll(longer, torch.tensor([3, 5]))
    torch.testing.assert_close(batched[:1], alone)


def test_training_is_deterministic_and_leaves_the_global_rng(data) -> None:
    tok, words, _ = data
    state = torch.get_rng_state()
    kw = {**SIZES, "dropout": 0.2, "steps": 5, "batch_size": 8, "lr": 1e-2}
    a = train_language_model(tok, words, **kw, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_language_model(tok, words, **kw, seed=3)
    c = train_language_model(tok, words, **kw, seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
    )
    assert not a.training


def test_save_load_round_trip(data, trained, tmp_path, monkeypatch) -> None:
    tok, _, held_out = data
    trained.save_pretrained(tmp_path / "lm")
    saved = json.loads((tmp_path / "lm" / "config.json").read_text())
    assert saved["model_type"] == "summary_lm" and saved["config"] == trained.config
    loaded = SummaryLanguageModel.from_pretrained(tmp_path / "lm").eval()
    ids = torch.tensor([[5, 6, 7, 3], [8, 3, 0, 0]])
    lengths = torch.tensor([4, 2])
    torch.testing.assert_close(loaded(ids, lengths), trained(ids, lengths), rtol=0, atol=0)
    assert perplexity(loaded, tok, held_out) == perplexity(trained, tok, held_out)

    with pytest.raises(SavedModelError, match="summary_lm"):
        Reconstructor.from_pretrained(tmp_path / "lm")
    local = Registry(autoload=False)
    local.register("saved_model", SummaryLanguageModel.model_type, SummaryLanguageModel)
    monkeypatch.setattr(registry, "get", local.get)
    assert isinstance(load_pretrained(tmp_path / "lm"), SummaryLanguageModel)


def test_registered_for_load_pretrained() -> None:
    try:
        assert registry.get("saved_model", "summary_lm") is SummaryLanguageModel
    except UnknownComponentError:
        pytest.fail("summary_lm is not registered in seqae/text/plugin.py")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": 0}, "hidden must be >= 1"),
        ({"layers": 0}, "layers must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"vocab_size": 3}, "special ids"),
        ({"bos_id": 0}, "must differ"),
    ],
)
def test_refuses_bad_model_settings(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SummaryLanguageModel(**{"vocab_size": 20, **kwargs})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"steps": -1}, "steps must be an int >= 0"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"grad_clip": float("nan")}, "grad_clip must be a positive number"),
        ({"hidden": 0}, "hidden must be >= 1"),
    ],
)
def test_refuses_bad_training_settings(data, change, match) -> None:
    tok, words, _ = data
    kw = {**SIZES, "steps": 1, **TRAINING, **change}
    with pytest.raises(ValueError, match=match):
        train_language_model(tok, words, **kw)


def test_refuses_bad_inputs(data, trained) -> None:
    tok, words, _ = data
    kw = {**SIZES, "steps": 1, **TRAINING}
    with pytest.raises(ValueError, match="non-empty list of sentences"):
        train_language_model(tok, [], **kw)
    with pytest.raises(ValueError, match="not a str"):
        train_language_model(tok, ["the cat sees the dog ."], **kw)
    with pytest.raises(ValueError, match="non-empty sequence of texts"):
        perplexity(trained, tok, [])
    with pytest.raises(ValueError, match="non-empty sequence of texts"):
        perplexity(trained, tok, "the cat")
    other = WordTokenizer.train(["a b c d e"], vocab_size=100, min_frequency=1)
    with pytest.raises(ValueError, match="use the tokenizer it was trained with"):
        perplexity(trained, other, ["a b"])
    with pytest.raises(ValueError, match="1 to 3 tokens"):
        trained.nll(torch.tensor([[5, 6, 3]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"targets \(B, T\)"):
        trained.nll(torch.tensor([5, 6, 3]), torch.tensor([3]))
