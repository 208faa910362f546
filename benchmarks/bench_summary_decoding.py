"""Decoding speed of a summarizer: summaries per second, greedy and beam.

Run by hand (never by the tests):

    python benchmarks/bench_summary_decoding.py --model runs/summary_ae/model
    python benchmarks/bench_summary_decoding.py              # an untrained generator of the
                                                            # summary_ae config's size
    python benchmarks/bench_summary_decoding.py --device cuda --threads 0

The articles are the test pairs of the embedded corpus (``--corpus``, built by ``seqae data
text``) or, when it is missing, a fixed synthetic set (random vocabulary words). Each mode
decodes the same ``--articles`` articles with :func:`seqae.text.summarize.summarize_texts` (what
``seqae summarize`` runs), ``--repeats`` times after a warm-up; the median is reported.

Modes: batched greedy (``--batch`` articles per batch, the peer every ratio is against),
one article at a time (greedy), batched beam search of each ``--beams`` width, and batched
greedy and beam search that repeat no word (``no_repeat_ngram=1``, what ``summary_ae``
evaluates; every other mode is unconstrained, whatever the folder says). Printed:
``RATIO <mode>/greedy summaries/s`` for each, measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from seqae.config import load_config
from seqae.text.generator import PointerGenerator
from seqae.text.summarize import Summarizer, load_summarizer, summarize_texts
from seqae.text.tokenizer import WordTokenizer

CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs"


def articles_for(corpus: Path, n: int, seed: int) -> list[str]:
    """``n`` test articles of the embedded corpus, or synthetic ones when it is missing."""
    test = corpus / "test.jsonl"
    if test.is_file():
        rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
        return [row["article"] for row in rows[:n]]
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(500)]
    return [" ".join(rng.choices(words, k=rng.randint(25, 80))) for _ in range(n)]


def untrained_summarizer(articles: list[str], seed: int) -> Summarizer:
    """A generator of the summary_ae config's size over a tokenizer trained on ``articles``."""
    cfg = load_config(CONFIGS / "summary_ae.yaml")
    tok = WordTokenizer.train(articles, vocab_size=cfg["tokenizer"]["vocab_size"], min_frequency=1)
    torch.manual_seed(seed)
    gen = PointerGenerator(
        vocab_size=tok.vocab_size,
        pad_id=tok.pad_id,
        unk_id=tok.unk_id,
        bos_id=tok.bos_id,
        eos_id=tok.eos_id,
        **cfg["model"]["generator"],
    )
    return Summarizer(
        gen.eval(),
        tok,
        max_article_words=cfg["data"]["max_article_words"],
        max_words=cfg["eval"]["max_words"],
    )


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a summarizer folder (run_dir/model)")
    parser.add_argument("--corpus", type=Path, default=Path("runs/text_corpus"))
    parser.add_argument("--articles", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--beams", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    articles = articles_for(args.corpus, args.articles, args.seed)
    if args.model is not None:
        summarizer = load_summarizer(args.model)
        source = str(args.model)
    else:
        summarizer = untrained_summarizer(articles, args.seed)
        source = "untrained generator of the summary_ae config's size"
    summarizer = summarizer._replace(generator=summarizer.generator.to(args.device).eval())
    limits = {
        "max_words": summarizer.max_words,
        "max_article_words": summarizer.max_article_words,
    }
    print(
        f"{len(articles)} articles, {source}, device {args.device}, "
        f"{torch.get_num_threads()} threads, at most {limits['max_words']} words per summary"
    )

    def run(beam: int, batch: int, no_repeat: int = 0):
        return lambda: summarize_texts(
            summarizer, articles, **limits, beam=beam, batch_size=batch, no_repeat_ngram=no_repeat
        )

    modes = {f"greedy, batch {args.batch}": run(1, args.batch), "greedy, batch 1": run(1, 1)}
    modes |= {f"beam {k}, batch {args.batch}": run(k, args.batch) for k in args.beams}
    modes[f"greedy no-repeat, batch {args.batch}"] = run(1, args.batch, 1)
    widest = max(args.beams)
    modes[f"beam {widest} no-repeat, batch {args.batch}"] = run(widest, args.batch, 1)
    rates = {}
    for name, fn in modes.items():
        seconds = timed(fn, args.repeats)
        rates[name] = len(articles) / seconds
        print(f"{name:>30}: {rates[name]:8.1f} summaries/s ({seconds:.2f} s)")
    peer = rates[f"greedy, batch {args.batch}"]
    for name, rate in rates.items():
        if name != f"greedy, batch {args.batch}":
            print(f"RATIO {name}/greedy summaries/s {rate / peer:.3f}")


if __name__ == "__main__":
    main()
