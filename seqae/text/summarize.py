"""``seqae summarize``: summaries of a file of articles with a trained summarizer folder.

A *summarizer folder* holds a :class:`~seqae.text.generator.PointerGenerator`
(``save_pretrained``: ``config.json`` + ``model.safetensors``) with its
:class:`~seqae.text.tokenizer.WordTokenizer` saved beside it, and optionally
``summarizer.json`` giving the limits it was trained with. The ``summary_ae`` recipe writes one
as ``output_dir/model/`` (:func:`save_summarizer`). ``summary_ppo`` writes a *policy*
summarizer folder there instead (:mod:`seqae.text.policy`: the trained PPO policy, which picks
the summary's words from the article, with the generator whose encoder it reads in
``encoder/``); this command reads both kinds::

    seqae summarize --model runs/summary_ae/model --input articles.txt --out summaries.txt
    cat articles.jsonl | seqae summarize --model DIR --input - --out - --beam 4

Input (``--input FILE`` or ``-`` for standard input, UTF-8):

- *plain text*: one article per line; the output has one summary per line.
- *JSON Lines*: one object per line with a string ``article``; the output has the same object
  with ``summary`` added (an input ``summary`` is replaced; every other key is kept, in order).
  A file is read as JSON Lines when its name ends in ``.jsonl`` or its first non-blank line
  starts with ``{``.

A blank line (or an empty ``article``) gives an empty summary, and a blank JSON Lines line a
blank output line, so line ``i`` of the output always answers line ``i`` of the input.
Articles longer than ``--max-article-words`` words (default: the folder's limit, else
:data:`DEFAULT_MAX_ARTICLE_WORDS`) are cut to their first words, with one warning line on
standard error giving how many were cut. Summaries have at most ``--max-words`` words (greedy
decoding; beam search with ``--beam K`` > 1) and repeat no ``--no-repeat-ngram``-gram (default:
the folder's setting, which ``summary_ae`` writes from its ``eval.no_repeat_ngram``, else 0:
unconstrained), so a run's folder writes the summaries its evaluation scored.

Bad input (a folder that is not a summarizer, bytes that are not UTF-8, a line that is not a
JSON object or holds an unpaired surrogate, an object without a string ``article``, a
pretty-printed JSON array, ``--out`` naming the input or a file in the ``--model`` folder, an
``--out`` that is a FIFO or a device or whose folder is missing) is one line ``seqae: error:
...`` and exit status 2; nothing is written. A file ``--out`` is written atomically
(:mod:`seqae.files`; a symbolic link is written through to its target); ``-`` writes standard
output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from seqae.cli import int_at_least
from seqae.data.lines import STDIO, check_output, read_input_lines, write_output_lines
from seqae.errors import UsageError

if TYPE_CHECKING:
    from seqae.text.generator import PointerGenerator
    from seqae.text.policy import SummaryPolicy
    from seqae.text.tokenizer import WordTokenizer

__all__ = [
    "DEFAULT_MAX_ARTICLE_WORDS",
    "DEFAULT_MAX_WORDS",
    "SETTINGS_FILE",
    "Summarizer",
    "add_parser",
    "load_summarizer",
    "save_policy_summarizer",
    "save_summarizer",
    "summarize_texts",
]

#: The file of a summarizer folder giving the limits the model was trained with.
SETTINGS_FILE = "summarizer.json"
#: Article limit when the folder names none (See et al. 2017 cut articles to 400 words).
DEFAULT_MAX_ARTICLE_WORDS = 400
#: Summary limit when the folder names none.
DEFAULT_MAX_WORDS = 30


class Summarizer(NamedTuple):
    """A loaded summarizer folder."""

    generator: PointerGenerator
    tokenizer: WordTokenizer
    #: Articles are cut to this many words.
    max_article_words: int
    #: Summaries have at most this many words.
    max_words: int
    #: A policy summarizer's policy (the generator then only encodes the article); None: the
    #: generator writes the summary.
    policy: SummaryPolicy | None = None
    #: ``n > 0``: the generator's summaries repeat no n-gram (1: no word twice); 0: no
    #: constraint (:meth:`PointerGenerator.greedy`).
    no_repeat_ngram: int = 0


def save_summarizer(
    directory: str | os.PathLike[str],
    generator: PointerGenerator,
    tokenizer: WordTokenizer,
    *,
    max_article_words: int,
    max_words: int,
    no_repeat_ngram: int = 0,
) -> Path:
    """Write a summarizer folder: the generator, its tokenizer beside it, and the limits.

    Args:
        directory: The folder (created when missing).
        generator: The trained generator (``save_pretrained``).
        tokenizer: Its tokenizer (``WordTokenizer.save``).
        max_article_words: The article length the generator was trained on.
        max_words: The default summary length.
        no_repeat_ngram: The default decoding constraint (0: none; see :class:`Summarizer`).

    Returns:
        The folder's path.
    """
    directory = Path(directory)
    generator.save_pretrained(directory)
    _save_tokenizer_and_limits(
        directory, tokenizer, max_article_words, max_words, no_repeat_ngram=no_repeat_ngram
    )
    return directory


def save_policy_summarizer(
    directory: str | os.PathLike[str],
    policy: SummaryPolicy,
    generator: PointerGenerator,
    tokenizer: WordTokenizer,
    *,
    max_article_words: int,
    max_words: int,
) -> Path:
    """Write a policy summarizer folder: the policy, the generator whose encoder it reads in
    ``encoder/``, the tokenizer beside it, and the limits (``max_article_words`` at most the
    policy's own: it reads no longer articles).

    Returns:
        The folder's path.
    """
    from seqae.text.policy import ENCODER_FOLDER

    directory = Path(directory)
    policy.save_pretrained(directory)
    generator.save_pretrained(directory / ENCODER_FOLDER)
    _save_tokenizer_and_limits(directory, tokenizer, max_article_words, max_words)
    return directory


def _save_tokenizer_and_limits(
    directory: Path,
    tokenizer: WordTokenizer,
    max_article_words: int,
    max_words: int,
    *,
    no_repeat_ngram: int = 0,
) -> None:
    """What both kinds of summarizer folder keep beside the model: the tokenizer and
    :data:`SETTINGS_FILE`."""
    from seqae.files import atomic_write_json

    tokenizer.save(directory)
    settings = {"max_article_words": int(max_article_words), "max_words": int(max_words)}
    if no_repeat_ngram:
        settings["no_repeat_ngram"] = int(no_repeat_ngram)
    atomic_write_json(directory / SETTINGS_FILE, settings)


def _not_a_summarizer(directory: Path, why: str) -> UsageError:
    return UsageError(
        f"--model {directory} is not a summarizer folder ({why}); expected a summary_generator "
        "or summary_policy model with its tokenizer beside it, such as a summary_ae or "
        "summary_ppo run's model/ folder"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_summarizer(directory: str | os.PathLike[str]) -> Summarizer:
    """Read a summarizer folder (see the module docstring).

    Args:
        directory: The folder.

    Raises:
        UsageError: The folder is missing, holds another kind of model, lacks the tokenizer,
            or its files do not fit together.
    """
    from seqae.core.saving import SavedModelError, read_model_config
    from seqae.text.env import GeneratorEncoder, observation_size
    from seqae.text.generator import PointerGenerator
    from seqae.text.policy import ENCODER_FOLDER, SummaryPolicy
    from seqae.text.tokenizer import TokenizerFolderError, WordTokenizer

    directory = Path(directory)
    policy = None
    try:
        if read_model_config(directory).model_type == SummaryPolicy.model_type:
            policy = SummaryPolicy.from_pretrained(directory).eval()
            generator = PointerGenerator.from_pretrained(directory / ENCODER_FOLDER)
        else:
            generator = PointerGenerator.from_pretrained(directory)
    except SavedModelError as exc:
        raise _not_a_summarizer(directory, _first_line(exc)) from None
    try:
        tokenizer = WordTokenizer.load(directory)
    except TokenizerFolderError as exc:
        raise _not_a_summarizer(directory, f"no tokenizer: {_first_line(exc)}") from None
    if tokenizer.vocab_size != generator.vocab_size:
        raise _not_a_summarizer(
            directory,
            f"its tokenizer has {tokenizer.vocab_size} words but the model "
            f"{generator.vocab_size}; they are from different runs",
        )
    if policy is not None:
        size = observation_size(GeneratorEncoder(generator, tokenizer))
        if size != policy.obs_dim:
            raise _not_a_summarizer(
                directory,
                f"its policy reads {policy.obs_dim} features but its encoder/ gives {size}; "
                "they are from different runs",
            )
    settings: dict[str, Any] = {}
    path = directory / SETTINGS_FILE
    if path.is_file():
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _not_a_summarizer(directory, f"{SETTINGS_FILE} is unreadable: {exc}") from None
        if not isinstance(settings, dict):
            raise _not_a_summarizer(
                directory,
                f"{SETTINGS_FILE} holds a JSON {type(settings).__name__}, expected an object",
            )
    limits = {
        "max_article_words": settings.get("max_article_words", DEFAULT_MAX_ARTICLE_WORDS),
        "max_words": settings.get("max_words", DEFAULT_MAX_WORDS),
        "no_repeat_ngram": settings.get("no_repeat_ngram", 0),
    }
    for key, value in limits.items():
        least = 0 if key == "no_repeat_ngram" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _not_a_summarizer(
                directory, f"{SETTINGS_FILE}: {key} is {value!r}, expected an integer >= {least}"
            )
    return Summarizer(generator.eval(), tokenizer, **limits, policy=policy)


def summarize_texts(
    summarizer: Summarizer,
    articles: Sequence[str],
    *,
    max_words: int,
    max_article_words: int,
    beam: int = 1,
    batch_size: int = 32,
    no_repeat_ngram: int | None = None,
) -> tuple[list[str], int]:
    """Summaries of ``articles``, in order; an empty article gets an empty summary.

    Args:
        summarizer: The loaded folder.
        articles: The texts.
        max_words: At most this many words per summary.
        max_article_words: Articles are cut to this many words.
        beam: 1 for greedy decoding, else the beam size.
        batch_size: Articles per batch.
        no_repeat_ngram: ``n > 0``: a generator never repeats an n-gram within a summary (1:
            no word twice; :meth:`PointerGenerator.greedy`); 0: no constraint; ``None``: the
            summarizer's own setting. A policy summarizer copies a span or a subset of the
            article's words, each at most once, and has no such setting.

    Returns:
        ``(summaries, n_truncated)``: the texts, and how many articles were cut.

    Raises:
        UsageError: A policy summarizer asked for beam search, or for articles longer than
            its limit.
    """
    import torch

    gen, tok = summarizer.generator, summarizer.tokenizer
    device = next(gen.parameters()).device
    words = [tok.tokenize(text, max_words=max_article_words) for text in articles]
    n_truncated = sum(1 for w in words if w.n_truncated)
    if summarizer.policy is not None:
        return _policy_texts(
            summarizer,
            articles,
            [w.words for w in words],
            max_words,
            max_article_words,
            beam=beam,
            batch_size=batch_size,
        ), n_truncated
    if no_repeat_ngram is None:
        no_repeat_ngram = summarizer.no_repeat_ngram
    todo = [i for i, w in enumerate(words) if w.words]
    out = [""] * len(articles)
    with torch.no_grad():
        for start in range(0, len(todo), batch_size):
            rows = todo[start : start + batch_size]
            src = tok.extend_batch([words[i].words for i in rows]).to(device)
            if beam > 1:
                decoded = gen.beam(
                    src, max_words=max_words, beam_size=beam, no_repeat_ngram=no_repeat_ngram
                )
            else:
                decoded = gen.greedy(src, max_words=max_words, no_repeat_ngram=no_repeat_ngram)
            for row, ids, oov in zip(rows, decoded.ids.cpu(), src.oov_words, strict=True):
                out[row] = tok.decode_extended(ids, oov)
    return out, n_truncated


def _policy_texts(
    summarizer: Summarizer,
    articles: Sequence[str],
    words: list[list[str]],
    max_words: int,
    max_article_words: int,
    *,
    beam: int,
    batch_size: int,
) -> list[str]:
    """A policy summarizer's summaries (:func:`seqae.text.policy.policy_summaries`), in the
    articles' own case and spacing."""
    from seqae.text.env import GeneratorEncoder
    from seqae.text.policy import policy_summaries

    assert summarizer.policy is not None
    if beam > 1:
        raise UsageError(
            f"--beam {beam}: a policy summarizer (summary_ppo) picks the article's words, it "
            "does not search; use --beam 1"
        )
    limit = summarizer.policy.max_article_words
    if max_article_words > limit:
        raise UsageError(
            f"--max-article-words {max_article_words}: this policy summarizer reads at most "
            f"{limit} words (its training articles' limit)"
        )
    return policy_summaries(
        summarizer.policy,
        GeneratorEncoder(summarizer.generator, summarizer.tokenizer),
        words,
        max_words=max_words,
        batch_size=batch_size,
        written=[
            (text, summarizer.tokenizer.word_offsets(text, max_words=max_article_words))
            for text in articles
        ],
    )


# -- reading and writing ---------------------------------------------------------------------


def _is_jsonl(source: str, lines: Sequence[str], name: str) -> bool:
    """Whether the input is JSON Lines: a ``.jsonl`` name, or a first non-blank line starting
    with ``{``. A first line starting with ``[`` (a JSON array, not JSON Lines) is refused
    rather than summarized line by line as text."""
    if source != STDIO and source.lower().endswith(".jsonl"):
        return True
    first = next((line for line in lines if line.strip()), "").lstrip()
    if first.startswith("["):
        raise UsageError(
            f"--input {name} looks like a JSON array (its first line starts with '['); "
            'expected JSON Lines (one {"article": "..."} object per line) or plain text'
        )
    return first.startswith("{")


def _unpaired_surrogate(obj: Any) -> str | None:
    """The first unpaired surrogate (``"\\ud800"``) in a decoded JSON value's keys or strings,
    which no UTF-8 output can hold; None when it has none."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(exc.object[exc.start]):04x}"
    return None


def _parse_jsonl(lines: Sequence[str], name: str) -> list[dict[str, Any] | None]:
    """One object per line (``None`` for a blank line), each with a string ``article``."""
    records: list[dict[str, Any] | None] = []
    expected = 'expected one {"article": "..."} object per line'
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            records.append(None)
            continue
        where = f"--input {name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc.msg}); {expected}") from None
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: a JSON {type(obj).__name__}; {expected}")
        surrogate = _unpaired_surrogate(obj)
        if surrogate is not None:
            raise UsageError(
                f"{where}: holds an unpaired surrogate ({surrogate}); expected valid Unicode text"
            )
        if "article" not in obj:
            raise UsageError(f"{where}: no 'article' key; {expected}")
        if not isinstance(obj["article"], str):
            raise UsageError(
                f"{where}: 'article' is a JSON {type(obj['article']).__name__}; expected a string"
            )
        records.append(obj)
    return records


def _refuse_out_in_model(out: str, model: str) -> None:
    """Refuse an ``--out`` inside the ``--model`` folder (resolved paths, so links count):
    writing there would damage the summarizer (``--out MODEL/config.json``)."""
    if out == STDIO:
        return
    folder = Path(model).resolve()
    if Path(out).resolve().is_relative_to(folder):
        raise UsageError(
            f"--out {out} is inside the --model folder {model}; writing there would damage "
            "the summarizer: choose a path outside it"
        )


def _cmd_summarize(args: argparse.Namespace) -> int:
    """Run ``seqae summarize`` (see the module docstring). ``--out`` is checked before any
    work: not the input, not inside the model folder, not a FIFO or device, in an existing
    folder (a missing one is refused, not created: :func:`seqae.data.lines.check_output`)."""
    check_output(args.out, args.input)
    _refuse_out_in_model(args.out, args.model)
    summarizer = load_summarizer(args.model)
    lines, name = read_input_lines(args.input, expected="a text or JSON Lines file")
    records = _parse_jsonl(lines, name) if _is_jsonl(args.input, lines, name) else None
    articles = list(lines) if records is None else [r["article"] if r else "" for r in records]
    limit = args.max_article_words or summarizer.max_article_words
    summaries, n_truncated = summarize_texts(
        summarizer,
        articles,
        max_words=args.max_words or summarizer.max_words,
        max_article_words=limit,
        beam=args.beam,
        batch_size=args.batch_size,
        no_repeat_ngram=args.no_repeat_ngram,
    )
    if n_truncated:
        print(
            f"seqae summarize: warning: {n_truncated} of {len(articles)} articles were longer "
            f"than {limit} words and were cut to their first {limit} (--max-article-words)",
            file=sys.stderr,
        )
    if records is None:
        out_lines = summaries
    else:
        out_lines = [
            "" if r is None else json.dumps({**r, "summary": s}, ensure_ascii=False)
            for r, s in zip(records, summaries, strict=True)
        ]
    write_output_lines(args.out, out_lines)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae summarize`` to an argparse subparsers object.

    The ``cli`` component of the registry: the parser's ``func`` default takes the parsed
    arguments and returns the exit status (0 success; bad input raises :class:`UsageError`,
    which ``seqae`` reports in one line with exit status 2).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "summarize",
        help="summarize articles with a trained summarizer folder (summary_ae's model/)",
        description=(
            "Summarize one article per line of --input (plain text), or the 'article' of each "
            "object of a JSON Lines file (.jsonl, or a first line starting with '{'; the output "
            "keeps every key and adds 'summary'). A blank line gives an empty summary line."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="summarizer folder: a generator with its tokenizer"
    )
    parser.add_argument("--input", required=True, help="articles file, or - for standard input")
    parser.add_argument(
        "--out", required=True, help="file to write (atomically), or - for standard output"
    )
    parser.add_argument(
        "--max-words",
        type=int_at_least(1),
        default=None,
        help=f"most words per summary (default: the folder's, else {DEFAULT_MAX_WORDS})",
    )
    parser.add_argument(
        "--max-article-words",
        type=int_at_least(1),
        default=None,
        help="articles are cut to this many words, with one warning giving how many "
        f"(default: the folder's, else {DEFAULT_MAX_ARTICLE_WORDS})",
    )
    parser.add_argument(
        "--beam", type=int_at_least(1), default=1, help="beam size (default 1: greedy decoding)"
    )
    parser.add_argument(
        "--no-repeat-ngram",
        type=int_at_least(0),
        default=None,
        metavar="N",
        help="N > 0: a summary repeats no N-gram (1: no word twice); 0: unconstrained "
        "(default: the folder's setting, else 0)",
    )
    parser.add_argument(
        "--batch-size", type=int_at_least(1), default=32, help="articles per batch (default 32)"
    )
    parser.set_defaults(func=_cmd_summarize)
    return parser
