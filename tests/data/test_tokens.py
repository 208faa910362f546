"""Word-level ids shared by the plugins (seqae.data.tokens): the vocabulary with <unk> and a
minimum count, padded batches, and length-bucketed batches."""

from __future__ import annotations

import json

import pytest
import torch

from seqae.data.tokens import (
    SPECIAL_TOKENS,
    Vocabulary,
    length_batches,
    pad_token_ids,
)

TRAIN = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat", "ran"], ["the", "cat"]]


def test_vocabulary_order_min_count_and_unknown_words() -> None:
    vocab = Vocabulary.build(TRAIN, min_count=2)
    assert vocab.words[:4] == list(SPECIAL_TOKENS) == ["<pad>", "<unk>", "<s>", "</s>"]
    # by count (the 3, cat 3, sat 2), ties alphabetically; dog, a, ran (1 each) are unknown
    assert vocab.words[4:] == ["cat", "the", "sat"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert vocab.encode(["the", "dog", "sat"]) == [5, 1, 6]
    assert vocab.encode(["cat"], add_bos=True, add_eos=True) == [2, 4, 3]
    assert vocab.decode([2, 5, 1, 4, 3, 0]) == ["the", "<unk>", "cat"]
    assert vocab.decode([2, 5, 3], skip_special=False) == ["<s>", "the", "</s>"]
    assert "cat" in vocab and "dog" not in vocab and len(vocab) == 7
    assert vocab.unknown_rate([["the", "dog"], ["zebra", "cat"]]) == pytest.approx(0.5)
    everything = Vocabulary.build(TRAIN)
    assert len(everything) == 4 + 6 and everything.id("dog") != everything.unk_id
    assert Vocabulary.build(TRAIN, max_size=1).words[4:] == ["cat"]


def test_vocabulary_saves_as_json_and_refuses_bad_words() -> None:
    vocab = Vocabulary.build(TRAIN)
    data = json.loads(json.dumps(vocab.to_dict()))
    assert Vocabulary.from_dict(data) == vocab
    with pytest.raises(ValueError, match="not a seqae vocabulary"):
        Vocabulary.from_dict({"words": ["a"]})
    with pytest.raises(ValueError, match="special tokens"):
        Vocabulary.from_dict({**data, "special_tokens": ["<pad>"]})
    with pytest.raises(ValueError, match="'a' is repeated"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="'<unk>' is a special token"):
        Vocabulary(["<unk>"])
    with pytest.raises(TypeError, match="not a str"):
        Vocabulary.build(["the cat sat"])
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        Vocabulary.build(TRAIN, min_count=0)


def test_padded_batches() -> None:
    vocab = Vocabulary.build(TRAIN)
    batch = vocab.batch([["the", "cat", "sat"], ["a"], []], add_eos=True)
    assert batch.ids.dtype == torch.long and batch.ids.shape == (3, 4)
    assert batch.lengths.tolist() == [4, 2, 1]
    assert batch.ids[1].tolist() == [vocab.id("a"), vocab.eos_id, vocab.pad_id, vocab.pad_id]
    assert batch.mask.tolist() == [
        [True, True, True, True],
        [True, True, False, False],
        [True, False, False, False],
    ]
    assert batch.to("cpu").ids.equal(batch.ids)
    empty = pad_token_ids([], pad_id=0)
    assert empty.ids.shape == (0, 0) and empty.lengths.tolist() == []
    assert pad_token_ids([[7], [8, 9]], pad_id=-1).ids.tolist() == [[7, -1], [8, 9]]


def test_length_batches_hold_every_item_once() -> None:
    lengths = [3, 5, 3, 3, 5, 2, 3, 9]
    same = length_batches(lengths, batch_size=2)
    assert same == [[5], [0, 2], [3, 6], [1, 4], [7]]
    for seed in (0, 1):
        batches = length_batches(lengths, batch_size=2, seed=seed)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert all(len({lengths[i] for i in b}) == 1 and len(b) <= 2 for b in batches)
        assert batches == length_batches(lengths, batch_size=2, seed=seed)
    assert length_batches(lengths, batch_size=2, seed=0) != length_batches(
        lengths, batch_size=2, seed=1
    )
    mixed = length_batches(lengths, batch_size=3, same_length=False)
    assert [len(b) for b in mixed] == [3, 3, 2]
    assert [lengths[i] for b in mixed for i in b] == sorted(lengths)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_batches(lengths, batch_size=0)
