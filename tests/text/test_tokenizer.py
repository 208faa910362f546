"""The text plugin's word tokenizer (seqae.text.tokenizer): training, normalisation,
encode/decode, truncation, the pointer-generator's extended ids, saving beside a model, and the
errors for folders that hold something else."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from seqae.errors import UsageError
from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from seqae.text.tokenizer import (  # noqa: E402
    MARKER_FILE,
    SPECIAL_TOKENS,
    TokenizerFolderError,
    TokenizerMissingError,
    WordTokenizer,
    as_written,
    detokenize,
)

TEXTS = [
    "The cat sat on the mat.",
    "The dog's bone (a big one) is on the mat, isn't it?",
    "Debian is a free operating system; it's well-known.",
    "The library reads and writes image files: PNG, JPEG and 3.14 others.",
    "The cat and the dog sat on the mat.",
]
IN_VOCAB = [
    "the cat sat on the mat.",
    "the dog's bone (a big one) is on the mat, isn't it?",
    "debian is a free operating system; it's well-known.",
    "the library reads and writes image files: png, jpeg and 3.14 others.",
]


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.train(TEXTS, vocab_size=1000, min_frequency=1)


def _words(texts: list[str]) -> Counter[str]:
    tokenizer = WordTokenizer.train(texts, vocab_size=1000, min_frequency=1)
    return Counter(w for t in texts for w in tokenizer.tokenize(t).words)


# --------------------------------------------------------------------------------------------
# training and the vocabulary
# --------------------------------------------------------------------------------------------


def test_special_tokens_come_first(tok: WordTokenizer) -> None:
    assert [tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id] == [0, 1, 2, 3]
    assert tok.ids_to_words([0, 1, 2, 3]) == list(SPECIAL_TOKENS)


def test_vocabulary_is_every_word_by_frequency_then_alphabetically(tok: WordTokenizer) -> None:
    counts = _words(TEXTS)
    expected = sorted(counts, key=lambda w: (-counts[w], w))
    assert tok.ids_to_words(range(4, tok.vocab_size)) == expected
    assert tok.vocab_size == 4 + len(counts) == len(tok)


def test_vocab_size_and_min_frequency_limit_the_vocabulary() -> None:
    counts = _words(TEXTS)
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    small = WordTokenizer.train(TEXTS, vocab_size=4 + 5, min_frequency=1)
    assert small.vocab_size == 9
    assert small.ids_to_words(range(4, 9)) == ranked[:5]
    frequent = WordTokenizer.train(TEXTS, vocab_size=1000, min_frequency=2)
    kept = set(frequent.ids_to_words(range(4, frequent.vocab_size)))
    assert kept == {w for w, n in counts.items() if n >= 2}
    assert "debian" not in frequent and "the" in frequent


def test_training_is_deterministic() -> None:
    a = WordTokenizer.train(TEXTS, vocab_size=20, min_frequency=1)
    b = WordTokenizer.train(iter(TEXTS), vocab_size=20, min_frequency=1)
    assert a.ids_to_words(range(a.vocab_size)) == b.ids_to_words(range(b.vocab_size))


def test_bad_training_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="vocab_size must exceed the 4 special tokens"):
        WordTokenizer.train(TEXTS, vocab_size=4)
    with pytest.raises(ValueError, match="min_frequency must be >= 1"):
        WordTokenizer.train(TEXTS, min_frequency=0)
    with pytest.raises(TypeError, match="not one str"):
        WordTokenizer.train("the cat sat")
    with pytest.raises(TypeError, match="text 1 is a int"):
        WordTokenizer.train(["the cat", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no training texts"):
        WordTokenizer.train([])
    with pytest.raises(ValueError, match="no word occurs 50 times"):
        WordTokenizer.train(TEXTS, min_frequency=50)


# --------------------------------------------------------------------------------------------
# words, ids and text
# --------------------------------------------------------------------------------------------


def test_words_are_lowercased_nfkc_and_split_at_punctuation(tok: WordTokenizer) -> None:
    assert tok.tokenize("Hello, World!").words == ["hello", ",", "world", "!"]
    # full-width letters and the "fi" ligature become plain letters (NFKC)
    assert tok.tokenize("ＣＡＴ ﬁle").words == ["cat", "file"]
    assert tok.tokenize("isn't").words == ["isn", "'", "t"]
    # text that looks like a special token is ordinary text
    assert tok.tokenize("a <s> b").words == ["a", "<", "s", ">", "b"]


def test_word_offsets_point_at_each_word_as_written(tok: WordTokenizer) -> None:
    text = "The  /etc/localtime ﬁle: İstanbul's (ALPHA) a <s> b"
    words = tok.tokenize(text).words
    offsets = tok.word_offsets(text)
    assert len(offsets) == len(words)
    # each offset holds its word before normalisation (NFKC, lower case)
    for word, (a, b) in zip(words, offsets, strict=True):
        assert tok.tokenize(text[a:b]).words == [word]
    assert [text[a:b] for a, b in offsets[:6]] == ["The", "/", "etc", "/", "localtime", "ﬁle"]
    assert tok.word_offsets(text, max_words=2) == offsets[:2]
    with pytest.raises(ValueError, match="max_words must be >= 1"):
        tok.word_offsets(text, max_words=0)


def test_as_written_keeps_the_text_s_own_case_and_spacing(tok: WordTokenizer) -> None:
    text = "The /etc/localtime file configures (ALPHA) the Zone."
    offsets = tok.word_offsets(text)
    assert as_written(text, offsets, [1, 2, 3, 4, 5]) == "/etc/localtime file"
    assert as_written(text, offsets, [7, 8, 9, 10]) == "(ALPHA) the"
    assert as_written(text, offsets, [0, 5, 6, 11, 12]) == "The file configures Zone."  # runs
    assert as_written(text, offsets, []) == ""
    for bad in ([3, 2], [1, 1], [-1], [len(offsets)]):
        with pytest.raises(ValueError, match="positions must increase"):
            as_written(text, offsets, bad)


@pytest.mark.parametrize("text", IN_VOCAB)
def test_in_vocabulary_text_round_trips(tok: WordTokenizer, text: str) -> None:
    ids = tok.encode(text).ids
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text
    assert tok.decode(torch.tensor(ids)) == text


def test_unknown_words_become_unk(tok: WordTokenizer) -> None:
    encoded = tok.encode("The zebra sat.")
    assert encoded.ids == [
        tok.words_to_ids(["the"])[0],
        tok.unk_id,
        *tok.words_to_ids(["sat", "."]),
    ]
    assert tok.decode(encoded.ids) == "the <unk> sat."


def test_same_ids_as_transformers(tok: WordTokenizer) -> None:
    for text in [*TEXTS, "An unseen ZEBRA, twice: zebra!"]:
        hf = tok.fast(text, add_special_tokens=False)["input_ids"]
        assert hf == tok.encode(text).ids, text


def test_max_words_truncates_and_counts_what_was_cut(tok: WordTokenizer) -> None:
    text = "the cat sat on the mat."  # 7 words, the full stop included
    assert tok.tokenize(text, max_words=3) == (["the", "cat", "sat"], 4)
    assert tok.tokenize(text, max_words=7) == (tok.tokenize(text).words, 0)
    assert tok.tokenize(text).n_truncated == 0
    encoded = tok.encode(text, max_words=2, bos=True, eos=True)
    assert encoded.ids == [tok.bos_id, *tok.words_to_ids(["the", "cat"]), tok.eos_id]
    assert encoded.n_truncated == 5
    with pytest.raises(ValueError, match="max_words must be >= 1"):
        tok.tokenize(text, max_words=0)


def test_decode_drops_padding_and_start_and_stops_at_the_end(tok: WordTokenizer) -> None:
    cat, sat, mat = tok.words_to_ids(["cat", "sat", "mat"])
    ids = [tok.bos_id, cat, tok.pad_id, sat, tok.eos_id, mat, tok.pad_id]
    assert tok.decode(ids) == "cat sat"


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        ("hello , world !", "hello, world!"),
        ("a ( big ) one ; done .", "a (big) one; done."),
        ("don ' t stop , it ' s fine", "don't stop, it's fine"),
        ('he said " hi there " and left', 'he said "hi there" and left'),
        ("pi is 3 . 14 and 1 , 000 at 10 : 30", "pi is 3.14 and 1,000 at 10:30"),
        ("a well - known and / or foo _ bar", "a well-known and/or foo_bar"),
        ("end . next : more", "end. next: more"),
        ("", ""),
    ],
)
def test_detokenized_text_reads_well(tokens: str, text: str) -> None:
    assert detokenize(tokens.split(" ") if tokens else []) == text


# --------------------------------------------------------------------------------------------
# the extended vocabulary (copying)
# --------------------------------------------------------------------------------------------


def test_extend_gives_each_distinct_unseen_word_its_own_id(tok: WordTokenizer) -> None:
    words = tok.tokenize("The zebra saw the yak; the zebra sat.").words
    extended = tok.extend(words)
    v = tok.vocab_size
    assert extended.oov_words == ["zebra", "saw", "yak"]
    the, semi, sat, stop = tok.words_to_ids(["the", ";", "sat", "."])
    assert extended.ids == [the, v, v + 1, the, v + 2, semi, the, v, sat, stop]
    # in-vocabulary words keep the ids encode gives them
    plain = tok.words_to_ids(words)
    assert [e if e < v else tok.unk_id for e in extended.ids] == plain
    assert tok.decode_extended(extended.ids, extended.oov_words) == (
        "the zebra saw the yak; the zebra sat."
    )
    assert tok.extend(tok.tokenize("the cat").words).oov_words == []


def test_extended_ids_need_their_words(tok: WordTokenizer) -> None:
    v = tok.vocab_size
    with pytest.raises(ValueError, match=r"outside the vocabulary.*decode_extended"):
        tok.decode([v])
    with pytest.raises(ValueError, match=f"id {v + 1} is outside"):
        tok.decode_extended([v + 1], ["zebra"])
    with pytest.raises(ValueError, match="id -1 is outside"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="call tokenize"):
        tok.extend("the zebra")  # type: ignore[arg-type]


def test_a_summary_copies_the_article_s_unseen_words(tok: WordTokenizer) -> None:
    article = tok.extend(tok.tokenize("the zebra and the yak").words)
    target = tok.extend_target(tok.tokenize("yak and gnu").words, article.oov_words)
    v = tok.vocab_size
    # "yak" is the article's second unseen word; "gnu" is in neither: <unk>
    assert target == [v + 1, tok.words_to_ids(["and"])[0], tok.unk_id]


def test_batches_are_padded_in_both_vocabularies(tok: WordTokenizer) -> None:
    articles = [tok.tokenize(t).words for t in ["the zebra sat", "the cat", "a yak, a gnu, a yak"]]
    batch = tok.extend_batch(articles)
    v = tok.vocab_size
    assert batch.lengths.tolist() == [3, 2, 8]
    assert batch.ids.shape == batch.extended_ids.shape == (3, 8)
    assert batch.ids.dtype == batch.extended_ids.dtype == torch.long
    assert batch.oov_words == [["zebra"], [], ["yak", "gnu"]]
    assert batch.max_oovs == 2
    for b, words in enumerate(articles):
        n = len(words)
        assert batch.extended_ids[b, :n].tolist() == tok.extend(words).ids
        assert batch.ids[b, :n].tolist() == tok.words_to_ids(words)
        assert (batch.extended_ids[b, n:] == tok.pad_id).all()
        assert (batch.ids[b, n:] == tok.pad_id).all()
    assert int(batch.ids.max()) < v <= int(batch.extended_ids.max()) < v + batch.max_oovs

    summaries = [tok.tokenize(t).words for t in ["zebra", "cat sat", "gnu yak"]]
    targets = tok.extend_targets(summaries, batch.oov_words, bos=True)
    assert targets.lengths.tolist() == [3, 4, 4]
    assert targets.extended_ids[0, :3].tolist() == [tok.bos_id, v, tok.eos_id]
    assert targets.extended_ids[2].tolist() == [tok.bos_id, v + 1, v, tok.eos_id]
    assert targets.ids[2].tolist() == [tok.bos_id, tok.unk_id, tok.unk_id, tok.eos_id]
    assert targets.extended_ids[0, 3].item() == tok.pad_id
    no_eos = tok.extend_targets(summaries, batch.oov_words, eos=False)
    assert no_eos.lengths.tolist() == [1, 2, 2]
    with pytest.raises(ValueError, match="3 targets but 2 lists"):
        tok.extend_targets(summaries, batch.oov_words[:2])
    with pytest.raises(ValueError, match="non-empty"):
        tok.extend_batch([])


# --------------------------------------------------------------------------------------------
# saving beside a model, loading, and folders that hold something else
# --------------------------------------------------------------------------------------------


def _model_folder(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "autoencoder", "config": {}}))
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_save_and_load_beside_a_model(tok: WordTokenizer, tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "model")
    config = (folder / "config.json").read_bytes()
    tok.save(folder)
    assert (folder / "config.json").read_bytes() == config
    assert {"tokenizer.json", "tokenizer_config.json", MARKER_FILE} <= {
        p.name for p in folder.iterdir()
    }
    loaded = WordTokenizer.load(folder)
    assert loaded.ids_to_words(range(loaded.vocab_size)) == tok.ids_to_words(range(tok.vocab_size))
    assert loaded.min_frequency == tok.min_frequency
    text = "The dog's zebra sat on the mat."
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.decode(loaded.encode(IN_VOCAB[1]).ids) == IN_VOCAB[1]


def test_transformers_opens_the_saved_folder(tok: WordTokenizer, tmp_path: Path) -> None:
    folder = tok.save(_model_folder(tmp_path / "model"))
    hf = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    assert (hf.pad_token_id, hf.unk_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2, 3)
    for text in [*TEXTS, "A zebra!"]:
        assert hf(text, add_special_tokens=False)["input_ids"] == tok.encode(text).ids


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert isinstance(err.value, UsageError) and isinstance(err.value, ValueError)
    return message


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerMissingError) as err:
        WordTokenizer.load(tmp_path / "nowhere")
    assert "nowhere: not a seqae text tokenizer folder: it does not exist" in _one_line(err)
    assert isinstance(err.value, FileNotFoundError)


def test_another_model_s_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "model")
    with pytest.raises(TokenizerMissingError) as err:
        WordTokenizer.load(folder)
    message = _one_line(err)
    assert f"{MARKER_FILE} is missing (it has config.json, model.safetensors)" in message
    with pytest.raises(TokenizerFolderError, match="it is a file"):
        WordTokenizer.load(folder / "config.json")


def test_another_tokenizer_is_a_clear_error(tok: WordTokenizer, tmp_path: Path) -> None:
    folder = tok.save(tmp_path / "tok")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.save(str(folder / "tokenizer.json"))
    with pytest.raises(TokenizerFolderError) as err:
        WordTokenizer.load(folder)
    assert "not a word-level tokenizer (its model is BPE" in _one_line(err)
    # a tokenizer saved by transformers alone has no marker
    other = tmp_path / "hf"
    tok.fast.save_pretrained(str(other))
    with pytest.raises(TokenizerMissingError, match=f"{MARKER_FILE} is missing"):
        WordTokenizer.load(other)


def test_damaged_or_mixed_files_are_clear_errors(tok: WordTokenizer, tmp_path: Path) -> None:
    folder = tok.save(tmp_path / "tok")
    tokenizer_json = (folder / "tokenizer.json").read_text()
    (folder / "tokenizer.json").write_text(tokenizer_json[:100])
    with pytest.raises(TokenizerFolderError) as err:
        WordTokenizer.load(folder)
    assert "tokenizer.json is unreadable" in _one_line(err)

    WordTokenizer.train(TEXTS[:1], vocab_size=100, min_frequency=1).save(tmp_path / "small")
    (folder / "tokenizer.json").write_bytes((tmp_path / "small" / "tokenizer.json").read_bytes())
    with pytest.raises(TokenizerFolderError) as err:
        WordTokenizer.load(folder)
    assert "the files are from different saves" in _one_line(err)

    (folder / "tokenizer.json").unlink()
    with pytest.raises(TokenizerMissingError, match="tokenizer.json is missing"):
        WordTokenizer.load(folder)

    marker = json.loads((folder / MARKER_FILE).read_text())
    (folder / MARKER_FILE).write_text(json.dumps({**marker, "format_version": 99}))
    with pytest.raises(TokenizerFolderError, match="newer than this seqae reads"):
        WordTokenizer.load(folder)
    (folder / MARKER_FILE).write_text("{not json")
    with pytest.raises(TokenizerFolderError, match=f"{MARKER_FILE} is unreadable"):
        WordTokenizer.load(folder)
    (folder / MARKER_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(TokenizerFolderError, match="does not describe one"):
        WordTokenizer.load(folder)


def test_saving_over_an_old_tokenizer_replaces_it(tok: WordTokenizer, tmp_path: Path) -> None:
    small = WordTokenizer.train(TEXTS[:1], vocab_size=100, min_frequency=1)
    small.save(tmp_path / "tok")
    tok.save(tmp_path / "tok")
    assert WordTokenizer.load(tmp_path / "tok").vocab_size == tok.vocab_size
    (tmp_path / "file").write_text("x")
    with pytest.raises(TokenizerFolderError, match="is not a folder"):
        tok.save(tmp_path / "file")


def test_an_interrupted_save_is_not_loaded(
    tok: WordTokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = WordTokenizer.train(TEXTS[:1], vocab_size=100, min_frequency=1).save(tmp_path / "t")

    def crash(path: Path, data: bytes, **kwargs: object) -> None:
        raise KeyboardInterrupt  # killed while writing the new files

    monkeypatch.setattr("seqae.text.tokenizer.atomic_write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        tok.save(folder)
    # the old marker is gone, so the old and the new files are never mixed up
    with pytest.raises(TokenizerMissingError, match=f"{MARKER_FILE} is missing"):
        WordTokenizer.load(folder)
