"""Text -> latent binary tree -> text: URNNG (Kim et al. 2019, arXiv 1904.03746) or the compound
PCFG (Kim, Dyer & Rush 2019, arXiv 1906.10225) trained on raw sentences, scored as parsers.

    seqae run tree_ae                                  # URNNG, full config (see its header)
    seqae run tree_ae --config tree_ae_pcfg            # the compound PCFG
    seqae run tree_ae --config tree_ae_tiny            # seconds; what the tests run
    torchrun --standalone --nproc_per_node=2 -m seqae.cli run tree_ae

Data: the embedded grammar corpus (``data.corpus``, built with ``data.preset`` when the folder
has no corpus yet; ``seqae data tree``), or a user's files: ``data.train``, ``data.valid`` and
``data.test`` (one tokenized sentence per line) with optional gold trees ``data.valid_trees``
and ``data.test_trees`` (bracketed, ``data.tree_style``: ``penn`` or ``unlabeled``; the
``k``-th tree must hold the words of the ``k``-th sentence). When ``data.train`` is set the
user's files are used and ``data.corpus`` is ignored. Preprocessing: ``data.lowercase``;
``data.drop_punctuation`` (a sentence with gold trees loses the words its tree tags as
punctuation, :func:`seqae.tree.treebank.preprocess_tree`, and is then read from its tree);
training sentences of more than ``data.max_length`` words are skipped, with a count (the
validation and test sentences are all kept: the field scores every test sentence); training
words seen fewer than ``data.min_count`` times are ``<unk>``.

Parts (each a ``run.part``, reused on ``resume=true``):

1. ``vocabulary``: the training sentences' words (rank 0; every rank reads it).
2. ``language_model``: the LSTM language model baseline
   (:class:`~seqae.tree.lm.TreeLanguageModel`) on the same training sentences (rank 0).
3. The main model's training loop, checkpointed, under DistributedDataParallel: Adam, gradient
   clipping, batches of same-length sentences (:func:`~seqae.data.tokens.length_batches`, each
   rank its shard). ``model.name: urnng``: the ELBO with ``train.samples`` trees per sentence,
   the score-function gradient with the leave-one-out baseline for the inference network
   (:meth:`URNNG.elbo`), its own learning rate ``train.inference_lr``.
   ``model.name: compound_pcfg``: the one-sample ELBO ``-log p(x | z) - KL``. Both anneal the
   KL weight linearly from 0 to 1 over ``train.warmup_steps`` (URNNG: the weight of
   ``log p(z)``; the compound PCFG: of its ``KL(q(z | x) || p(z))``). Every step seeds its own
   randomness from (seed, step, rank), so a resumed run continues exactly as an uninterrupted
   one.
4. ``evaluate_<split>_step<N>`` (rank 0; ``eval.split``: ``test`` for the report, ``valid``
   while choosing settings): the MBR tree of every sentence; unlabeled sentence- and
   corpus-level F1 against the gold trees (Kim et al.'s convention,
   :mod:`seqae.metrics.parsing`) with bootstrap intervals, with the right-branching,
   left-branching and random baselines in the same table; F1 by sentence length; recall by
   gold label (when the gold trees are labelled); the perplexity bound from ``eval.iw_samples``
   importance samples (:meth:`URNNG.importance_weighted_nll`,
   :meth:`CompoundPCFG.importance_weighted_nll`) beside the language model's perplexity on
   the same sentences and the same tokens (each word and the end of the sentence: URNNG and
   the language model predict ``</s>``; the compound PCFG generates the end implicitly, and
   its paper counts it the same way).

There is no ``train.compile``: ``torch.compile`` cannot trace the tree CRF's sampling (a
``torch.rand`` of symbolic size), so the models train eagerly.

Writes to ``output_dir``: config.yaml, parts/ (vocabulary, language_model), checkpoints/, tb/,
model/ (the trained model with ``vocab.json`` and ``tree_parser.json``: what ``seqae parse
--model`` and ``seqae.load_pretrained`` read), parses_<split>.txt (the model's trees of the
evaluated sentences, as ``seqae parse`` writes them), figures/trees.png (parsed trees next to
gold), eval_table.md and metrics.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from seqae.config import ConfigError, load_run_config  # noqa: E402
from seqae.data.tokens import Vocabulary, length_batches, pad_token_ids  # noqa: E402
from seqae.files import atomic_write_json, atomic_write_text  # noqa: E402
from seqae.metrics.parsing import (  # noqa: E402
    Bracketing,
    baseline_bracketings,
    f1_by_length,
    label_recall,
    label_recall_table,
    length_table,
    parsing_scores,
    parsing_table,
    sentence_f1,
)
from seqae.metrics.tables import markdown_table  # noqa: E402
from seqae.training import (  # noqa: E402
    RESULT_NEUTRAL_KEYS,
    DistributedContext,
    MetricLogger,
    RunSession,
    barrier,
    check_finite,
    init_distributed,
    progress,
    seed_everything,
    wrap_model,
)
from seqae.tree.corpus import PRESETS, build_tree_corpus  # noqa: E402
from seqae.tree.lm import TreeLanguageModel, perplexity  # noqa: E402
from seqae.tree.loaders import load_tree_corpus, read_sentences, read_trees  # noqa: E402
from seqae.tree.parse import encode_words, load_tree_parser, parse_spans, save_tree_parser  # noqa: E402
from seqae.tree.pcfg import CompoundPCFG  # noqa: E402
from seqae.tree.treebank import STYLES, Tree, is_punctuation, preprocess_tree  # noqa: E402
from seqae.tree.trees import (  # noqa: E402
    Span,
    brackets_to_spans,
    spans_to_brackets,
    spans_to_indicators,
)
from seqae.tree.urnng import URNNG  # noqa: E402

NULLABLE_KEYS = (
    "train.max_minutes",
    "data.corpus",
    "data.max_length",
)
#: ``model.name`` choices.
MODELS = ("urnng", "compound_pcfg")
#: The baselines scored beside the model: metrics key -> table name.
BASELINE_NAMES = {
    "right_branching": ("right", "right-branching"),
    "left_branching": ("left", "left-branching"),
    "random": ("random", "random trees"),
}
SPLITS = ("valid", "test")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def _positive_ints(section: dict[str, Any], where: str, keys: Sequence[str]) -> None:
    for key in keys:
        value = section[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.{key} must be an integer >= 1, got {value!r}")


def _dropouts(section: dict[str, Any], where: str, keys: Sequence[str]) -> None:
    for key in keys:
        if not 0.0 <= section[key] < 1.0:
            raise ConfigError(f"{where}.{key} must be in [0, 1), got {section[key]}")


def validate(cfg: dict[str, Any]) -> None:
    """Refuse impossible settings before anything is built (one line, ConfigError)."""
    d, m, t, lm, e = cfg["data"], cfg["model"], cfg["train"], cfg["language_model"], cfg["eval"]
    if cfg["device"] not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {cfg['device']!r}")
    if m["name"] not in MODELS:
        raise ConfigError(f"model.name must be one of {', '.join(MODELS)}, got {m['name']!r}")
    if d["preset"] not in PRESETS:
        raise ConfigError(f"data.preset must be one of {sorted(PRESETS)}, got {d['preset']!r}")
    if d["tree_style"] not in STYLES:
        raise ConfigError(f"data.tree_style must be one of {STYLES}, got {d['tree_style']!r}")
    if d["train"] is None and d["corpus"] is None:
        raise ConfigError(
            "no data: set data.corpus (the embedded grammar corpus) or data.train (your "
            "sentences file, with data.test and optionally data.valid)"
        )
    if d["train"] is not None:
        if d[e["split"]] is None:
            raise ConfigError(
                f"eval.split is {e['split']} but data.{e['split']} is not set; give the "
                f"{e['split']} sentences file (or set eval.split to the other split)"
            )
        for split in SPLITS:
            if d[f"{split}_trees"] is not None and d[split] is None:
                raise ConfigError(
                    f"data.{split}_trees needs data.{split}: the sentences its trees belong to"
                )
    if d["max_length"] is not None and (
        isinstance(d["max_length"], bool)
        or not isinstance(d["max_length"], int)
        or d["max_length"] < 1
    ):
        raise ConfigError(
            f"data.max_length must be an integer >= 1 or null, got {d['max_length']!r}"
        )
    _positive_ints(d, "data", ("min_count",))
    _positive_ints(
        m["urnng"],
        "model.urnng",
        ("embed_dim", "hidden_dim", "layers", "q_embed_dim", "q_hidden_dim", "q_mlp_dim"),
    )
    _dropouts(m["urnng"], "model.urnng", ("dropout", "q_dropout"))
    _positive_ints(
        m["compound_pcfg"],
        "model.compound_pcfg",
        ("nonterminals", "preterminals", "symbol_dim", "z_dim", "embed_dim", "hidden_dim"),
    )
    _positive_ints(t, "train", ("steps", "batch_size", "samples", "checkpoint_every", "log_every"))
    for key in ("lr", "inference_lr", "grad_clip"):
        if not t[key] > 0:
            raise ConfigError(f"train.{key} must be positive, got {t[key]}")
    if isinstance(t["warmup_steps"], bool) or t["warmup_steps"] < 0:
        raise ConfigError(
            f"train.warmup_steps must be >= 0 (0: no warm-up), got {t['warmup_steps']}"
        )
    if t["threads"] < 0:
        raise ConfigError(f"train.threads must be >= 0 (0: torch's default), got {t['threads']}")
    teacher = cfg["teacher"]
    if isinstance(teacher["steps"], bool) or not isinstance(teacher["steps"], int):
        raise ConfigError(f"teacher.steps must be an integer >= 0, got {teacher['steps']!r}")
    if not 0 <= teacher["steps"] <= t["steps"]:
        raise ConfigError(
            f"teacher.steps must be in [0, train.steps={t['steps']}] (the supervised steps come "
            f"first), got {teacher['steps']}"
        )
    if (teacher["from_run"] is None) != (teacher["steps"] == 0):
        raise ConfigError(
            "teacher.from_run and teacher.steps go together: set both (a finished tree_ae run "
            "and the supervised steps on its trees) or neither"
        )
    if teacher["from_run"] is not None and m["name"] != "urnng":
        raise ConfigError(
            f"teacher.from_run trains URNNG on another parser's trees; model.name is "
            f"{m['name']!r} (set model.name=urnng or teacher.from_run=null teacher.steps=0)"
        )
    if t["max_minutes"] is not None and not t["max_minutes"] > 0:
        raise ConfigError(f"train.max_minutes must be positive or null, got {t['max_minutes']}")
    _positive_ints(
        lm, "language_model", ("embed_dim", "hidden_dim", "layers", "steps", "batch_size")
    )
    _dropouts(lm, "language_model", ("dropout",))
    if not lm["lr"] > 0:
        raise ConfigError(f"language_model.lr must be positive, got {lm['lr']}")
    if e["split"] not in SPLITS:
        raise ConfigError(f"eval.split must be test or valid, got {e['split']!r}")
    _positive_ints(e, "eval", ("iw_samples", "iw_chunk", "batch_size", "n_boot"))
    for key in ("figure_sentences", "examples"):
        if isinstance(e[key], bool) or not isinstance(e[key], int) or e[key] < 0:
            raise ConfigError(f"eval.{key} must be an integer >= 0, got {e[key]!r}")
    edges = e["length_edges"]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or edges[0] < 2:
        raise ConfigError(
            f"eval.length_edges must be increasing upper ends of length buckets, each >= 2, "
            f"got {edges}"
        )


class TreeData(NamedTuple):
    """The preprocessed sentences, and the gold trees where there are some."""

    train: list[list[str]]
    valid: list[list[str]]
    test: list[list[str]]
    #: ``valid``/``test`` -> the gold tree of each sentence, or None
    trees: dict[str, list[Tree] | None]
    #: training sentences skipped for being longer than ``data.max_length``
    skipped_long: int
    #: sentences (any split) left without words by the preprocessing
    skipped_empty: int


def _clean_trees(
    trees: list[Tree], *, lowercase: bool, drop_punctuation: bool
) -> list[Tree | None]:
    return [
        preprocess_tree(tree, lowercase=lowercase, drop_punctuation=drop_punctuation)
        for tree in trees
    ]


Sentences = dict[str, list[list[str]]]
GoldTrees = dict[str, list[Tree | None] | None]


def _read_user_files(d: dict[str, Any]) -> tuple[Sentences, GoldTrees]:
    """``data.train``, ``data.valid``, ``data.test`` and their gold trees where given (each
    tree checked against its sentence as written; punctuation is dropped after)."""
    sentences = {"train": read_sentences(d["train"], lowercase=d["lowercase"], what="data.train")}
    trees: GoldTrees = {}
    for split in SPLITS:
        path, tree_path = d[split], d[f"{split}_trees"]
        sentences[split] = (
            read_sentences(path, lowercase=d["lowercase"], what=f"data.{split}") if path else []
        )
        trees[split] = None
        if tree_path is not None:
            raw = read_trees(
                tree_path,
                style=d["tree_style"],
                sentences=path,
                lowercase=d["lowercase"],
                what=f"data.{split}_trees",
            )
            trees[split] = _clean_trees(
                raw, lowercase=False, drop_punctuation=d["drop_punctuation"]
            )
    return sentences, trees


def _read_corpus(d: dict[str, Any], *, announce: bool) -> tuple[Sentences, GoldTrees]:
    """The embedded corpus in ``data.corpus``, built with ``data.preset`` when missing."""
    folder = Path(d["corpus"])
    if not (folder / "corpus.json").is_file():
        if announce:
            print(f"tree_ae: building the {d['preset']} tree corpus into {folder}")
        build_tree_corpus(folder, preset=d["preset"], overwrite=folder.exists())
    corpus = load_tree_corpus(folder)
    if corpus.info.get("preset") != d["preset"]:
        raise ConfigError(
            f"data.corpus {folder} holds the {corpus.info.get('preset')!r} corpus but "
            f"data.preset is {d['preset']!r}; point data.corpus at another folder or set "
            "data.preset to match"
        )
    train = [[w.lower() for w in s] for s in corpus.train] if d["lowercase"] else corpus.train
    sentences = {"train": train, "valid": corpus.valid, "test": corpus.test}
    trees: GoldTrees = {
        split: _clean_trees(gold, lowercase=d["lowercase"], drop_punctuation=d["drop_punctuation"])
        for split, gold in (("valid", corpus.valid_trees), ("test", corpus.test_trees))
    }
    return sentences, trees


def load_data(d: dict[str, Any], *, announce: bool = True) -> TreeData:
    """The sentences of the embedded corpus (built when missing) or of a user's files,
    preprocessed (see the module docstring). A sentence with a gold tree is its tree's words."""
    if d["train"] is not None:
        sentences, trees = _read_user_files(d)
    else:
        sentences, trees = _read_corpus(d, announce=announce)
    empty = 0
    kept_trees: dict[str, list[Tree] | None] = {}
    for split in ("train", *SPLITS):
        gold = trees.get(split)
        if gold is not None:  # the sentences are the trees' words
            kept_trees[split] = [tree for tree in gold if tree is not None]
            empty += len(gold) - len(kept_trees[split])
            sentences[split] = [tree.leaves() for tree in kept_trees[split]]
        else:
            words = sentences[split]
            if d["drop_punctuation"]:
                words = [[w for w in s if not is_punctuation(w)] for s in words]
            sentences[split] = [s for s in words if s]
            empty += len(words) - len(sentences[split])
    train, long_ = sentences["train"], 0
    if d["max_length"] is not None:
        train = [s for s in sentences["train"] if len(s) <= d["max_length"]]
        long_ = len(sentences["train"]) - len(train)
    if announce and (long_ or empty):
        print(
            f"tree_ae: skipped {long_} training sentences longer than data.max_length="
            f"{d['max_length']} words and {empty} sentences left without words"
        )
    if not train:
        raise ConfigError(
            f"no training sentences left (data.max_length={d['max_length']}); raise "
            "data.max_length or check the training file"
        )
    return TreeData(
        train=train,
        valid=sentences["valid"],
        test=sentences["test"],
        trees={split: kept_trees.get(split) for split in SPLITS},
        skipped_long=long_,
        skipped_empty=empty,
    )


def build_model(cfg: dict[str, Any], vocab: Vocabulary) -> URNNG | CompoundPCFG:
    """The ``model.name`` model over this vocabulary, with its section's sizes."""
    m = cfg["model"]
    if m["name"] == "urnng":
        return URNNG(vocab_size=len(vocab), pad_id=vocab.pad_id, eos_id=vocab.eos_id, **m["urnng"])
    return CompoundPCFG(vocab_size=len(vocab), **m["compound_pcfg"])


def build_language_model(cfg: dict[str, Any], vocab: Vocabulary) -> TreeLanguageModel:
    """The LSTM baseline: predicts each word and ``</s>``, as URNNG does."""
    lm = cfg["language_model"]
    return TreeLanguageModel(
        vocab_size=len(vocab),
        embed_dim=lm["embed_dim"],
        hidden_dim=lm["hidden_dim"],
        layers=lm["layers"],
        dropout=lm["dropout"],
        pad_id=vocab.pad_id,
        bos_id=vocab.bos_id,
        eos_id=vocab.eos_id,
    )


class BatchCycle:
    """Step -> the indices of that step's batch: epochs of
    :func:`~seqae.data.tokens.length_batches`, epoch ``e`` shuffled with ``seed + e``, so a
    step's batch depends only on the step (what makes a resumed run continue exactly).

    Args:
        lengths: Each sentence's length.
        batch_size: Most sentences per batch.
        seed: Seed of epoch 0.
        same_length: Batches of one sentence length (no padding) or of neighbouring lengths.
    """

    def __init__(
        self, lengths: Sequence[int], *, batch_size: int, seed: int, same_length: bool = True
    ) -> None:
        self.lengths, self.batch_size = list(lengths), batch_size
        self.seed, self.same_length = seed, same_length
        self._epoch, self._batches = -1, []
        self.per_epoch = len(self._make(0))

    def _make(self, epoch: int) -> list[list[int]]:
        return length_batches(
            self.lengths,
            batch_size=self.batch_size,
            same_length=self.same_length,
            seed=self.seed + epoch,
        )

    def __call__(self, step: int) -> list[int]:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._make(epoch)
        return self._batches[index]


def token_batch(
    ids: Sequence[Sequence[int]], rows: Sequence[int], vocab: Vocabulary, device: torch.device
) -> tuple[Tensor, Tensor]:
    """``(tokens, lengths)`` of the sentences ``rows`` on ``device``."""
    batch = pad_token_ids([ids[i] for i in rows], pad_id=vocab.pad_id).to(device)
    return batch.ids, batch.lengths


def kl_weight(step: int, warmup_steps: int) -> float:
    """The KL warm-up weight: linear from 0 at step 0 to 1 at ``warmup_steps``."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


# ---------------------------------------------------------------------------------------------
# parts: the vocabulary and the language model baseline
# ---------------------------------------------------------------------------------------------
def make_vocabulary(cfg: dict[str, Any], data: TreeData, folder: Path) -> dict[str, Any]:
    """The training sentences' words (rarer than ``data.min_count``: ``<unk>``), saved."""
    vocab = Vocabulary.build(data.train, min_count=cfg["data"]["min_count"])
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "vocab.json", vocab.to_dict())
    return {
        "size": len(vocab),
        "train_sentences": len(data.train),
        "train_words": sum(len(s) for s in data.train),
        **{f"unknown_rate_{split}": vocab.unknown_rate(getattr(data, split)) for split in SPLITS},
    }


def read_vocabulary(folder: Path) -> Vocabulary:
    """The vocabulary :func:`make_vocabulary` saved in ``folder``."""
    return Vocabulary.from_dict(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))


def train_language_model(
    cfg: dict[str, Any], vocab: Vocabulary, data: TreeData, folder: Path, device: torch.device
) -> dict[str, Any]:
    """The LSTM language model on the training sentences (loss per predicted token), saved;
    its validation perplexity when there are validation sentences."""
    c = cfg["language_model"]
    torch.manual_seed(cfg["seed"] + 1)
    lm = build_language_model(cfg, vocab).to(device).train()
    optimizer = torch.optim.Adam(lm.parameters(), lr=c["lr"])
    ids = [encode_words(vocab, s) for s in data.train]
    batches = BatchCycle(
        [len(s) for s in ids], batch_size=c["batch_size"], seed=cfg["seed"] + 1, same_length=False
    )
    loss = torch.zeros(())
    for step in progress(range(c["steps"]), desc="tree_ae: language model"):
        tokens, lengths = token_batch(ids, batches(step), vocab, device)
        loss = -lm.log_prob(tokens, lengths).sum() / lm.predicted_tokens(lengths).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(lm.parameters(), cfg["train"]["grad_clip"])
        optimizer.step()
    lm.save_pretrained(folder)
    result: dict[str, Any] = {"steps": c["steps"], "final_loss": float(loss.detach())}
    if data.valid:
        nll, tokens = language_model_nll(
            lm, vocab, data.valid, batch_size=cfg["eval"]["batch_size"]
        )
        result["valid_perplexity"] = perplexity(nll, tokens)
    return result


@torch.no_grad()
def language_model_nll(
    lm: TreeLanguageModel, vocab: Vocabulary, sentences: list[list[str]], *, batch_size: int
) -> tuple[Tensor, Tensor]:
    """``(-log p, predicted tokens)`` of each sentence under the language model (eval mode)."""
    device = next(lm.parameters()).device
    lm.eval()
    ids = [encode_words(vocab, s) for s in sentences]
    nll, tokens = (
        torch.zeros(len(ids), dtype=torch.float64),
        torch.zeros(len(ids), dtype=torch.long),
    )
    for rows in length_batches([len(s) for s in ids], batch_size=batch_size, same_length=False):
        ids_b, lengths = token_batch(ids, rows, vocab, device)
        nll[rows] = -lm.log_prob(ids_b, lengths).double().cpu()
        tokens[rows] = lm.predicted_tokens(lengths).cpu()
    return nll, tokens


# ---------------------------------------------------------------------------------------------
# part: a teacher's trees (URNNG from another parser's trees)
# ---------------------------------------------------------------------------------------------
TEACHER_TREES = "trees.txt"


def teacher_source(cfg: dict[str, Any]) -> Path | None:
    """The finished tree_ae run named by ``teacher.from_run``, checked; or None."""
    folder = cfg["teacher"]["from_run"]
    if folder is None:
        return None
    folder = Path(folder)
    if folder.resolve() == Path(cfg["output_dir"]).resolve():
        raise ConfigError(f"teacher.from_run: {folder} is this run's own folder")
    other = load_run_config(folder, option="teacher.from_run", recipe="tree_ae")
    theirs = other.get("data") if isinstance(other.get("data"), dict) else {}
    differ = sorted(key for key, value in cfg["data"].items() if theirs.get(key) != value)
    if differ:
        raise ConfigError(
            f"teacher.from_run: {folder} was trained on other data (data.{', data.'.join(differ)} "
            "differ); its parser must have learned from this run's training sentences"
        )
    if not (folder / "model" / "config.json").is_file():
        raise ConfigError(
            f"teacher.from_run: {folder} has no model/ folder (expected a finished tree_ae run)"
        )
    return folder


def valid_sentence_f1(
    model: URNNG | CompoundPCFG, vocab: Vocabulary, data: TreeData, batch_size: int
) -> float | None:
    """Mean sentence F1 of the model's MBR trees of the validation sentences (None without
    gold trees); leaves the model in eval mode."""
    gold = data.trees["valid"]
    if gold is None:
        return None
    spans = parse_spans(model, vocab, data.valid, batch_size=batch_size)
    scores = [
        sentence_f1(as_bracketing(words, tree), g)
        for words, tree, g in zip(data.valid, spans, gold, strict=True)
    ]
    scored = [f1 for f1 in scores if f1 is not None]
    return sum(scored) / len(scored) if scored else None


def make_teacher_trees(
    cfg: dict[str, Any], data: TreeData, source: Path, folder: Path, device: torch.device
) -> dict[str, Any]:
    """The teacher run's parser's MBR tree of every training sentence, written as brackets
    (one line per sentence, :data:`TEACHER_TREES`); its validation F1 in the summary."""
    parser = load_tree_parser(source / "model", map_location=device)
    batch_size = cfg["eval"]["batch_size"]
    spans = parse_spans(
        parser.model, parser.vocab, data.train, batch_size=batch_size, lowercase=parser.lowercase
    )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        folder / TEACHER_TREES,
        "".join(
            f"{spans_to_brackets(tree, w)}\n" for tree, w in zip(spans, data.train, strict=True)
        ),
    )
    return {
        "from_run": str(source),
        "model_type": parser.model.model_type,
        "sentences": len(spans),
        "valid_sentence_f1": valid_sentence_f1(parser.model, parser.vocab, data, batch_size),
    }


def read_teacher_trees(folder: Path, sentences: list[list[str]]) -> list[list[Span]]:
    """The trees :func:`make_teacher_trees` wrote, each checked against its sentence."""
    path = folder / TEACHER_TREES
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(sentences):
        raise ConfigError(
            f"{path} holds {len(lines)} trees for {len(sentences)} training sentences; "
            "overwrite=true makes them again"
        )
    trees = []
    for number, (line, words) in enumerate(zip(lines, sentences, strict=True), start=1):
        spans, leaves = brackets_to_spans(line)
        if leaves != words:
            raise ConfigError(
                f"{path}, line {number}: the tree's words are not training sentence {number}'s; "
                "overwrite=true makes them again"
            )
        trees.append(spans)
    return trees


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
class TreeObjective(nn.Module):
    """One training step's loss, as one ``forward`` (what DistributedDataParallel wraps).

    - URNNG: :meth:`URNNG.elbo` with ``samples`` trees per sentence: the RNNG's
      ``-mean_k [log p(x | z_k) + w log p(z_k)]`` plus the inference network's score-function
      loss (leave-one-out baseline) and ``- w H[q]``.
    - The compound PCFG: ``-log p(x | z) + w KL(q(z | x) || p(z))`` with one ``z ~ q``.

    ``w`` is the KL warm-up weight. Both are nats per sentence, averaged over the batch.

    Args:
        model: The ``URNNG`` or ``CompoundPCFG``.
        samples: Trees per sentence (URNNG).
    """

    def __init__(self, model: URNNG | CompoundPCFG, *, samples: int) -> None:
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(
        self, tokens: Tensor, lengths: Tensor, weight: float, trees: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss to back-propagate and detached diagnostics to log.

        Args:
            tokens: ``(B, N)`` word ids.
            lengths: ``(B,)`` sentence lengths.
            weight: The KL warm-up weight in ``[0, 1]``.
            trees: URNNG only: ``(B, N, N)`` span indicators of given trees (a teacher's):
                the loss is then the supervised ``-log p(x, y) - log q(y | x)`` instead.
        """
        if trees is not None:
            if not isinstance(self.model, URNNG):
                raise TypeError("TreeObjective: only URNNG learns from given trees")
            joint = self.model.joint(tokens, lengths, trees.unsqueeze(1))  # (B, 1) parts
            log_q = self.model.posterior(tokens, lengths).log_prob(trees)  # (B,)
            loss = -(joint.log_prob.mean() + log_q.mean())
            logged = {
                "supervised_log_joint": joint.log_prob.mean().detach(),
                "supervised_log_q": log_q.mean().detach(),
                "word_log_prob": joint.word_log_prob.mean().detach(),
                "action_log_prob": joint.action_log_prob.mean().detach(),
            }
            return loss, {"loss": loss.detach(), **logged}
        if isinstance(self.model, URNNG):
            out = self.model.elbo(tokens, lengths, samples=self.samples, kl_weight=weight)
            logged = {
                "elbo": out.elbo.mean(),
                "entropy": out.entropy.mean(),
                "reward_variance": out.reward_variance.mean(),
                "word_log_prob": out.word_log_prob.mean(),
                "action_log_prob": out.action_log_prob.mean(),
            }
            return out.loss, {"loss": out.loss.detach(), **logged}
        out = self.model(tokens, lengths)
        loss = out.nll.mean() + weight * out.kl_loss
        logged = {"elbo": out.elbo.mean(), "kl": out.kl.mean(), "nll": out.nll.detach().mean()}
        return loss, {"loss": loss.detach(), **logged}


def make_optimizer(cfg: dict[str, Any], model: URNNG | CompoundPCFG) -> torch.optim.Adam:
    """Adam; URNNG's inference network has its own learning rate (``train.inference_lr``)."""
    t = cfg["train"]
    if isinstance(model, URNNG):
        return torch.optim.Adam(
            [
                {"params": model.generative.parameters(), "lr": t["lr"]},
                {"params": model.inference.parameters(), "lr": t["inference_lr"]},
            ]
        )
    return torch.optim.Adam(model.parameters(), lr=t["lr"])


def train(
    cfg: dict[str, Any],
    run: RunSession,
    ctx: DistributedContext,
    vocab: Vocabulary,
    data: TreeData,
    teacher_trees: list[list[Span]] | None = None,
) -> dict[str, Any]:
    """The main model's loop, checkpointed; rank 0 saves the model folder ``model/``.

    Under torchrun every rank draws its batches from its own shard of the training sentences
    and DistributedDataParallel averages the gradients, so every rank keeps the same weights.
    With ``teacher_trees`` (one tree per training sentence) the first ``teacher.steps`` steps
    are supervised on them; rank 0 scores the validation F1 where they end.
    """
    t, teacher_steps = cfg["train"], cfg["teacher"]["steps"]
    model = build_model(cfg, vocab).to(ctx.device)
    optimizer = make_optimizer(cfg, model)
    resumed = run.resume(model=model, optimizer=optimizer)
    step = resumed.step if resumed else 0
    supervised_f1 = resumed.extra.get("supervised_valid_f1") if resumed else None
    objective = TreeObjective(model, samples=t["samples"])
    # a batch of one-word sentences leaves the compound PCFG's binary rules out of the graph
    one_word = isinstance(model, CompoundPCFG) and min(len(s) for s in data.train) == 1
    ddp = wrap_model(objective, ctx, find_unused_parameters=one_word)
    shard = data.train[ctx.rank :: ctx.world_size]
    ids = [encode_words(vocab, s) for s in shard]
    shard_trees = teacher_trees[ctx.rank :: ctx.world_size] if teacher_trees else None
    batches = BatchCycle([len(s) for s in ids], batch_size=t["batch_size"], seed=cfg["seed"])
    logger = MetricLogger(run.dir) if ctx.is_main else None
    bar = progress(
        range(step, t["steps"]), desc="tree_ae", enabled=None if t["progress"] else False
    )
    model.train()
    weight = kl_weight(step, t["warmup_steps"])
    for _ in bar:
        # every step's randomness comes from (seed, step, rank): a resumed run continues exactly
        torch.manual_seed((cfg["seed"] * 1_000_003 + step) * 101 + ctx.rank)
        rows = batches(step)
        tokens, lengths = token_batch(ids, rows, vocab, ctx.device)
        weight = kl_weight(step, t["warmup_steps"])
        trees = None
        if step < teacher_steps and shard_trees is not None:
            trees = spans_to_indicators(
                [shard_trees[i] for i in rows],
                lengths.tolist(),
                n=tokens.shape[1],
                device=ctx.device,
            )
        loss, logged = ddp(tokens, lengths, weight, trees)
        check_finite(loss, step=step, last_checkpoint=run.checkpoints.latest_path)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        optimizer.step()
        step += 1
        if logger is not None and step % t["log_every"] == 0:
            logger.scalars({**logged, "kl_weight": weight}, step=step, prefix="train/")
        if step == teacher_steps and ctx.is_main:  # the supervised stage's parser, on valid
            supervised_f1 = valid_sentence_f1(model, vocab, data, cfg["eval"]["batch_size"])
            model.train()
            if supervised_f1 is not None:
                print(
                    f"tree_ae: validation sentence F1 {100 * supervised_f1:.1f} after the "
                    f"{teacher_steps} supervised steps"
                )
                if logger is not None:
                    logger.scalars({"sentence_f1": supervised_f1}, step=step, prefix="valid/")
        out_of_time = run.out_of_time()
        if run.checkpoint_due(step) or step == t["steps"] or out_of_time:
            run.save(
                step,
                model=model,
                optimizer=optimizer,
                extra={"supervised_valid_f1": supervised_f1},
            )
        if out_of_time:
            if ctx.is_main:
                print(f"tree_ae: train.max_minutes={t['max_minutes']} reached at step {step}")
            break
    if logger is not None:
        logger.close()
    valid_f1 = None
    if ctx.is_main:
        valid_f1 = valid_sentence_f1(model, vocab, data, cfg["eval"]["batch_size"])
        d = cfg["data"]
        save_tree_parser(
            run.dir / "model",
            model,
            vocab,
            lowercase=d["lowercase"],
            drop_punctuation=d["drop_punctuation"],
            max_length=d["max_length"],
        )
    return {
        "steps": step,
        "final_kl_weight": weight,
        "batches_per_epoch": batches.per_epoch,
        "train_seconds": run.train_seconds,
        "stopped_by_time_budget": run.out_of_time(),
        "world_size": ctx.world_size,
        "teacher_steps": teacher_steps,
        "supervised_valid_sentence_f1": supervised_f1,
        "valid_sentence_f1": valid_f1,
    }


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def importance_weighted_nll(
    model: URNNG | CompoundPCFG,
    vocab: Vocabulary,
    sentences: list[list[str]],
    *,
    samples: int,
    chunk: int,
    batch_size: int,
    seed: int,
) -> tuple[Tensor, Tensor]:
    """``(-log p bound, predicted tokens)`` of each sentence from ``samples`` importance
    samples (eval mode; one seeded generator, so the same run gives the same numbers)."""
    device = next(model.parameters()).device
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = [encode_words(vocab, s) for s in sentences]
    nll, tokens = (
        torch.zeros(len(ids), dtype=torch.float64),
        torch.zeros(len(ids), dtype=torch.long),
    )
    batches = length_batches([len(s) for s in ids], batch_size=batch_size, same_length=False)
    for rows in progress(batches, desc="tree_ae: perplexity bound"):
        ids_b, lengths = token_batch(ids, rows, vocab, device)
        bound = model.importance_weighted_nll(
            ids_b, lengths, samples=samples, chunk=chunk, generator=generator
        )
        nll[rows] = bound.double().cpu()
        tokens[rows] = model.predicted_tokens(lengths).cpu()  # words and </s> (PCFG: its end)
    return nll, tokens


def as_bracketing(words: Sequence[str], spans: Sequence[Span]) -> Bracketing:
    """A predicted tree (inclusive spans, leaves included) for :mod:`seqae.metrics.parsing`."""
    return Bracketing.from_spans(len(words), spans, inclusive=True)


def evaluate(
    cfg: dict[str, Any], run: RunSession, data: TreeData, device: torch.device
) -> dict[str, Any]:
    """Parse, score and measure the sentences of ``eval.split`` (module docstring); writes
    parses_<split>.txt, figures/trees.png and eval_table.md."""
    e, split, name = cfg["eval"], cfg["eval"]["split"], cfg["model"]["name"]
    sentences = getattr(data, split)
    gold = data.trees[split]
    parser = load_tree_parser(run.dir / "model", map_location=device)
    model, vocab = parser.model, parser.vocab
    spans = parse_spans(model, vocab, sentences, batch_size=e["batch_size"])
    brackets = [
        spans_to_brackets(tree, words) for tree, words in zip(spans, sentences, strict=True)
    ]
    atomic_write_text(run.dir / f"parses_{split}.txt", "".join(f"{b}\n" for b in brackets))
    predicted = [as_bracketing(words, tree) for words, tree in zip(sentences, spans, strict=True)]
    title = (
        f"tree_ae ({name}, {Path(cfg['output_dir']).name}): the {len(sentences)} {split} sentences"
    )
    sections = [f"# {title}"]
    metrics: dict[str, Any] = {
        "eval_split": split,
        "n_eval_sentences": len(sentences),
        "gold_trees": gold is not None,
    }

    if gold is not None and any(len(s) >= 2 for s in sentences):
        metrics |= score_trees(cfg, predicted, gold, sections)

    lm = TreeLanguageModel.from_pretrained(run.part_dir("language_model"), map_location=device)
    nll, tokens = importance_weighted_nll(
        model,
        vocab,
        sentences,
        samples=e["iw_samples"],
        chunk=e["iw_chunk"],
        batch_size=e["batch_size"],
        seed=cfg["seed"],
    )
    lm_nll, lm_tokens = language_model_nll(lm, vocab, sentences, batch_size=e["batch_size"])
    if not torch.equal(tokens, lm_tokens):  # both must count the words and </s> alike
        raise RuntimeError(
            f"tree_ae: the model predicts {int(tokens.sum())} tokens of the {split} sentences "
            f"but the language model {int(lm_tokens.sum())}; their perplexities would not compare"
        )
    metrics |= {
        "model_perplexity": perplexity(nll, tokens),
        "lm_perplexity": perplexity(lm_nll, lm_tokens),
        "model_nll_per_sentence": float(nll.mean()),
        "lm_nll_per_sentence": float(lm_nll.mean()),
        "perplexity_tokens": int(tokens.sum()),
        "iw_samples": e["iw_samples"],
        "unknown_rate": vocab.unknown_rate(sentences),
    }
    sections += [
        f"## Perplexity ({metrics['perplexity_tokens']} tokens: every word and the end of each "
        f"sentence; the model's is the importance-weighted bound with {e['iw_samples']} samples)",
        markdown_table(
            ["model", "perplexity", "NLL (nats per sentence)"],
            [
                [name, metrics["model_perplexity"], metrics["model_nll_per_sentence"]],
                ["LSTM language model", metrics["lm_perplexity"], metrics["lm_nll_per_sentence"]],
            ],
            digits=2,
        ),
    ]
    figure = tree_figure(sentences, spans, gold, e["figure_sentences"], title=f"tree_ae ({name})")
    if figure is not None:
        (run.dir / "figures").mkdir(parents=True, exist_ok=True)
        figure.savefig(run.dir / "figures" / "trees.png", dpi=110)
        with MetricLogger(run.dir) as logger:
            logger.image("figures/trees", figure, step=0)
    if e["examples"]:
        shown = min(e["examples"], len(sentences))
        lines = []
        for k in range(shown):
            lines.append(f"- model: `{brackets[k]}`")
            if gold is not None:
                lines.append(f"  gold: `{gold[k].to_string(style='unlabeled')}`")
        sections += [f"## The first {shown} parses", "\n".join(lines)]
    atomic_write_text(run.dir / "eval_table.md", "\n\n".join(sections) + "\n")
    return metrics


def score_trees(
    cfg: dict[str, Any], predicted: list[Bracketing], gold: list[Tree], sections: list[str]
) -> dict[str, Any]:
    """F1 of the model and the baselines, by length and by gold label; appends the tables."""
    e, seed = cfg["eval"], cfg["seed"]
    systems = {"model": predicted}
    for key, (kind, _) in BASELINE_NAMES.items():
        systems[key] = baseline_bracketings(gold, kind, seed=seed)
    names = {"model": cfg["model"]["name"], **{k: v[1] for k, v in BASELINE_NAMES.items()}}
    scores = {
        key: parsing_scores(trees, gold, n_boot=e["n_boot"], seed=seed)
        for key, trees in systems.items()
    }
    metrics: dict[str, Any] = {"n_scored_sentences": scores["model"].n_sentences}
    for key, s in scores.items():
        metrics |= {
            f"{key}_sentence_f1": s.sentence_f1.estimate,
            f"{key}_sentence_f1_interval": [s.sentence_f1.low, s.sentence_f1.high],
            f"{key}_corpus_f1": s.corpus_f1.estimate,
            f"{key}_corpus_f1_interval": [s.corpus_f1.low, s.corpus_f1.high],
            f"{key}_precision": s.precision,
            f"{key}_recall": s.recall,
        }
    by_length = {
        key: f1_by_length(trees, gold, edges=e["length_edges"]) for key, trees in systems.items()
    }
    metrics["f1_by_length"] = {
        key: [bucket._asdict() for bucket in buckets] for key, buckets in by_length.items()
    }
    sections += [
        f"## Unlabeled F1 (%, sentence-level and corpus-level, ± bootstrap s.e. [95% interval], "
        f"{e['n_boot']} resamples; sentences of one word skipped)",
        parsing_table({names[k]: s for k, s in scores.items()}),
        "## Sentence F1 (%) by sentence length (sentences in each bucket)",
        length_table({names[k]: v for k, v in by_length.items()}),
    ]
    if any(label is not None for tree in gold for _, _, label in tree.spans()):
        recalls = {key: label_recall(trees, gold) for key, trees in systems.items()}
        metrics["label_recall"] = {
            key: {label: r.recall for label, r in rec.items()} for key, rec in recalls.items()
        }
        sections += [
            "## Recall (%) of the gold constituents by label (gold count)",
            label_recall_table({names[k]: v for k, v in recalls.items()}),
        ]
    return metrics


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def draw_tree(
    ax: plt.Axes, words: Sequence[str], spans: Sequence[tuple[int, int, str | None]], title: str
) -> None:
    """Draw a tree given by its constituents ``(start, end, label)`` (end exclusive; single
    words and repeats ignored): words along the bottom, each constituent above its children."""
    n = len(words)
    labels: dict[tuple[int, int], str | None] = {}
    for i, j, label in spans:
        if j - i >= 2 and (i, j) not in labels:
            labels[(i, j)] = label
    labels.setdefault((0, n), None)
    nodes = sorted(labels, key=lambda s: (s[1] - s[0], s[0]))  # narrow first
    place: dict[tuple[int, int], tuple[float, float]] = {(k, k + 1): (k, 0.0) for k in range(n)}
    for node in nodes:
        i, j = node
        inner = [s for s in nodes if i <= s[0] and s[1] <= j and s != node and s in place]
        tops = [
            s for s in inner if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in inner)
        ]
        covered = {k for a, b in tops for k in range(a, b)}
        children = tops + [(k, k + 1) for k in range(i, j) if k not in covered]
        xs, ys = zip(*(place[c] for c in children), strict=True)
        place[node] = (sum(xs) / len(xs), 1.0 + max(ys))
        for c in children:
            ax.plot([place[node][0], place[c][0]], [place[node][1], place[c][1]], color="0.4", lw=1)
        if labels[node]:
            ax.text(*place[node], labels[node], ha="center", va="bottom", fontsize=7, color="C0")
    for k, word in enumerate(words):
        ax.text(k, -0.15, word, ha="center", va="top", fontsize=8, rotation=40)
    ax.set_xlim(-0.8, max(n - 0.2, 1.0))
    ax.set_ylim(-1.6, max(y for _, y in place.values()) + 0.6)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def tree_figure(
    sentences: list[list[str]],
    spans: list[list[Span]],
    gold: list[Tree] | None,
    count: int,
    *,
    title: str,
) -> plt.Figure | None:
    """The model's trees of the first ``count`` sentences of three words or more, next to
    their gold trees when there are some; None when there is nothing to draw."""
    chosen = [k for k, s in enumerate(sentences) if len(s) >= 3][:count]
    if not chosen:
        return None
    cols = 1 if gold is None else 2
    width = max(4.0, 0.5 * max(len(sentences[k]) for k in chosen))
    fig, axes = plt.subplots(
        len(chosen), cols, figsize=(cols * width, 2.4 * len(chosen)), squeeze=False
    )
    for row, k in enumerate(chosen):
        predicted = [(i, j + 1, None) for i, j in spans[k]]
        draw_tree(axes[row][0], sentences[k], predicted, f"{title}: sentence {k + 1}")
        if gold is not None:
            draw_tree(axes[row][1], sentences[k], gold[k].spans(), "gold")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def main(cfg: dict[str, Any]) -> dict[str, Any] | None:
    validate(cfg)
    threads = torch.get_num_threads()
    if cfg["train"]["threads"] > 0:
        torch.set_num_threads(cfg["train"]["threads"])
    try:
        return run_tree_ae(cfg)
    finally:
        torch.set_num_threads(threads)


def run_tree_ae(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The whole run (:func:`main` without the thread setting)."""
    ctx = init_distributed(device_preference=cfg["device"])
    seed_everything(cfg["seed"])
    # resume=true train.steps=N extends the training loop; the parts before it are kept
    neutral = (*RESULT_NEUTRAL_KEYS, "train.steps", "train.threads")
    # the data first: a bad file is reported before the run folder is claimed
    if ctx.is_main:
        data = load_data(cfg["data"])
    barrier()  # rank 0 builds the corpus when it is missing; the others read it after
    if not ctx.is_main:
        data = load_data(cfg["data"], announce=False)
    split = cfg["eval"]["split"]
    if not getattr(data, split):
        raise ConfigError(f"tree_ae: there are no {split} sentences to evaluate on (eval.split)")
    teacher = teacher_source(cfg)
    with RunSession(cfg, recipe="tree_ae", ctx=ctx, neutral=neutral) as run:

        def made(name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            def announced() -> dict[str, Any]:
                print(f"tree_ae: {name}")
                return compute()

            return run.part(name, announced, main_only=True)

        vocab_dir = run.part_dir("vocabulary")
        parts = {"vocabulary": made("vocabulary", lambda: make_vocabulary(cfg, data, vocab_dir))}
        vocab = read_vocabulary(vocab_dir)
        parts["language_model"] = made(
            "language_model",
            lambda: train_language_model(
                cfg, vocab, data, run.part_dir("language_model"), ctx.device
            ),
        )
        teacher_trees = None
        if teacher is not None:
            parts["teacher_trees"] = made(
                "teacher_trees",
                lambda: make_teacher_trees(
                    cfg, data, teacher, run.part_dir("teacher_trees"), ctx.device
                ),
            )
            teacher_trees = read_teacher_trees(run.part_dir("teacher_trees"), data.train)
        seed_everything(cfg["seed"])  # the same initial weights on every rank, reused or not
        summary = train(cfg, run, ctx, vocab, data, teacher_trees)
        if not ctx.is_main:
            return None
        metrics = run.part(
            f"evaluate_{cfg['eval']['split']}_step{summary['steps']}",
            lambda: evaluate(cfg, run, data, ctx.device),
        )
        metrics = {
            **metrics,
            **summary,
            "model_name": cfg["model"]["name"],
            "vocab_size": len(vocab),
            "n_train": len(data.train),
            "skipped_long_train": data.skipped_long,
            "skipped_empty": data.skipped_empty,
            "parts": parts,
        }
        return run.finish(metrics, summary=summary_line(metrics))


def summary_line(m: dict[str, Any]) -> str:
    """The run's result in one line."""
    split = m["eval_split"]
    if "model_sentence_f1" in m:
        f1 = (
            f"{split} sentence F1 {100 * m['model_sentence_f1']:.1f} (right-branching "
            f"{100 * m['right_branching_sentence_f1']:.1f}, left-branching "
            f"{100 * m['left_branching_sentence_f1']:.1f}, random "
            f"{100 * m['random_sentence_f1']:.1f})"
        )
    else:
        f1 = f"no gold trees for the {split} sentences"
    return (
        f"{m['model_name']}: {f1} | perplexity {m['model_perplexity']:.1f} (bound, "
        f"{m['iw_samples']} samples; LSTM LM {m['lm_perplexity']:.1f}) | {m['steps']} steps"
    )
