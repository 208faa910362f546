"""Sentences with gold trees from embedded probabilistic context-free grammars.

A :class:`Grammar` is built from :class:`GrammarSettings` and samples sentences top-down,
each with the tree that generated it (a :class:`~seqae.tree.treebank.Tree` with phrase labels
``S``, ``NP``, ``VP``, ``PP``, ``SBAR``, ``ADJP``, ``ADVP`` and Penn-style part-of-speech tags
``DT``, ``NN``, ``NNP``, ``JJ``, ``RB``, ``IN``, ``WDT``, ``CC``, ``VBD``)::

    grammar = Grammar(GrammarSettings(family="english", vocab_size=400))
    trees = grammar.generate(1000, seed=0)        # distinct sentences, deterministic
    trees[0].leaves(), trees[0].to_string()

Two families, so that a result can be shown on a grammar nobody tuned on:

- ``"english"``: head-initial, English-like. Determiners, adjectives and nouns; prepositional
  phrases after nouns and verbs; transitive, intransitive and sentential verbs (``said that
  S``); relative clauses (``the dog which saw a cat``); coordination of sentences, noun
  phrases and verb phrases. Flat (n-ary) phrases as in the Penn Treebank: ``(NP (DT the) (JJ
  big) (NN dog))``. Closed-class words are English; open-class words are English words first,
  then made-up English-sounding ones when ``vocab_size`` asks for more.
- ``"other"``: head-final with its own rules and probabilities, a made-up lexicon of
  consonant-vowel words: objects before verbs, postpositions (``PP -> NP IN``),
  clause-final complementizers (``SBAR -> S IN``), relative clauses and demonstratives
  around the noun, adjuncts first.

Every word belongs to one lexical category (``VBD@t``, ``VBD@i`` and ``VBD@s`` are the
transitive, intransitive and sentential verbs, all tagged ``VBD``); within a category words
follow a Zipf law (``zipf``), so some words are rare. Settings change the size and shape of
the language: ``vocab_size`` (distinct words), ``max_depth`` and ``recursion`` (how deep
phrases nest), ``min_length``/``max_length`` (sentences outside are rejected and drawn again),
``binary`` (rules of three or more children are right-factored into binary ones, with an
intermediate node labelled like its parent plus ``'``, e.g. ``NP'``, so the gold trees are
binary) and ``mirror`` (every rule's children in reverse order: a head-initial grammar becomes
head-final and vice versa). Gold trees are kept as generated; evaluation uses their unlabeled
spans (:mod:`seqae.metrics.parsing`).

Sampling uses Python's :class:`random.Random`, seeded, so a seed gives the same sentences on
every machine; the lexicon depends only on the family and ``vocab_size``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from seqae.errors import UsageError
from seqae.tree.treebank import Tree

__all__ = [
    "FAMILIES",
    "Grammar",
    "GrammarError",
    "GrammarSettings",
    "Rule",
]

#: The grammar families.
FAMILIES: tuple[str, ...] = ("english", "other")


class GrammarError(UsageError, ValueError):
    """Settings that give no grammar, or a grammar that cannot give the sentences asked for."""


@dataclass(frozen=True)
class GrammarSettings:
    """The size and shape of a generated language (see the module docstring).

    Attributes:
        family: ``"english"`` (head-initial) or ``"other"`` (head-final, made-up words).
        vocab_size: Distinct words of the lexicon (closed classes included).
        max_depth: From this depth on (the root ``S`` is at depth 0) a phrase takes only its
            non-recursive rules, so deeper nesting stops (trees may still grow a few levels
            below, down to the words).
        recursion: Multiplies the weight of the recursive rules (``NP -> NP PP``, ``S -> S CC
            S``, ``VP -> VBD SBAR``, ...) before the rules of a phrase are normalised: 0 gives
            no recursion, 1 the grammar as written, more gives deeper trees.
        min_length: Shortest sentence, in words.
        max_length: Longest sentence, in words.
        binary: Right-factor rules with three or more children, so the gold trees are binary.
        mirror: Reverse the children of every rule (head-initial <-> head-final).
        zipf: Exponent of the Zipf law of the words within a category (0: uniform).
    """

    family: str = "english"
    vocab_size: int = 400
    max_depth: int = 6
    recursion: float = 1.0
    min_length: int = 3
    max_length: int = 30
    binary: bool = False
    mirror: bool = False
    zipf: float = 1.0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise GrammarError(f"family: {self.family!r}; expected one of {', '.join(FAMILIES)}")
        for name in ("vocab_size", "max_depth", "min_length", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GrammarError(f"{name}: {value!r}; expected an integer >= 1")
        if self.max_length < self.min_length:
            raise GrammarError(
                f"max_length {self.max_length} is below min_length {self.min_length}"
            )
        for name in ("recursion", "zipf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise GrammarError(f"{name}: {value!r}; expected a number >= 0")
        for name in ("binary", "mirror"):
            if not isinstance(getattr(self, name), bool):
                raise GrammarError(f"{name}: {getattr(self, name)!r}; expected true or false")


class Rule(NamedTuple):
    """A rule ``lhs -> rhs`` with its (unnormalised) weight."""

    lhs: str
    rhs: tuple[str, ...]
    weight: float
    #: A recursive rule: left out from ``max_depth`` on.
    grows: bool


def label_of(symbol: str) -> str:
    """The tree label of a grammar symbol: its name up to ``@`` (``SBAR@rel`` -> ``SBAR``)."""
    return symbol.partition("@")[0]


# --------------------------------------------------------------------------------------------
# The families. Rules: "LHS -> RHS weight [grow]"; symbols with a lexicon are categories.

_ENGLISH_RULES = """
S -> NP VP 0.80
S -> ADVP NP VP 0.06
S -> S CC S 0.14 grow
NP -> DT NN 0.42
NP -> DT JJ NN 0.16
NP -> DT ADJP NN 0.05
NP -> NNP 0.10
NP -> NP PP 0.15 grow
NP -> NP SBAR@rel 0.08 grow
NP -> NP CC NP 0.04 grow
VP -> VBD@i 0.22
VP -> VBD@i ADVP 0.05
VP -> VBD@i PP 0.08
VP -> VBD@t NP 0.33
VP -> VBD@t NP PP 0.10
VP -> VBD@s SBAR@comp 0.12 grow
VP -> VP CC VP 0.04 grow
VP -> ADVP VP 0.06 grow
PP -> IN NP 1.0
SBAR@comp -> IN@comp S 1.0
SBAR@rel -> WDT VP 1.0
ADJP -> RB@deg JJ 0.75
ADJP -> JJ CC JJ 0.25
ADVP -> RB 1.0
"""

_OTHER_RULES = """
S -> NP VP 0.76
S -> PP NP VP 0.14
S -> S CC S 0.10 grow
NP -> NN 0.30
NP -> NN DT 0.15
NP -> JJ NN 0.15
NP -> ADJP NN 0.05
NP -> NNP 0.12
NP -> PP NN 0.08 grow
NP -> SBAR@rel NN 0.10 grow
NP -> NP CC NP 0.05 grow
VP -> VBD@i 0.20
VP -> ADVP VBD@i 0.06
VP -> PP VBD@i 0.08
VP -> NP VBD@t 0.34
VP -> PP NP VBD@t 0.08
VP -> SBAR@comp VBD@s 0.14 grow
VP -> ADVP VP 0.05 grow
PP -> NP IN 1.0
SBAR@comp -> S IN@comp 1.0
SBAR@rel -> VP WDT 1.0
ADJP -> RB@deg JJ 1.0
ADVP -> RB 1.0
"""

# Closed classes: fixed word lists (English) or sizes (made-up words).
_ENGLISH_CLOSED: dict[str, str] = {
    "DT": "the a every some this that no each",
    "IN": "in on near with under behind above beside without across into from around below",
    "IN@comp": "that whether if",
    "WDT": "which who that",
    "CC": "and or but",
    "RB@deg": "very quite rather too so",
}
_OTHER_CLOSED: dict[str, int] = {"DT": 4, "IN": 8, "IN@comp": 2, "WDT": 2, "CC": 2, "RB@deg": 3}

# Open classes: share of the open vocabulary, and English words (most frequent first).
_OPEN_SHARES: dict[str, float] = {
    "NN": 0.45,
    "NNP": 0.05,
    "JJ": 0.15,
    "RB": 0.05,
    "VBD@t": 0.15,
    "VBD@i": 0.10,
    "VBD@s": 0.05,
}
_ENGLISH_OPEN: dict[str, str] = {
    "NN": """
        dog cat man woman child bird house tree king girl boy teacher friend horse book river
        city garden door letter farmer doctor student box table window road village queen fox
        wolf bear mouse rabbit lion tiger snake fish duck goat sheep pig frog owl baker sailor
        pilot driver singer writer painter soldier judge forest mountain bridge tower castle
        school market church station harbor island valley lake field chair bottle cup key lamp
        bed coat hat shoe ring coin map picture song apple bread cake cheese egg soup tea milk
        stone flower leaf seed grass rock cloud star moon sun storm car boat train ship bicycle
        wagon plane truck idea story plan dream secret question answer rumor promise problem
        reason theory neighbor stranger guest prince princess giant wizard knight thief guard
        nurse lawyer clerk miller hunter shepherd fisherman merchant monkey camel eagle parrot
        whale shark spider bee ant cow donkey kitten puppy basket blanket candle clock mirror
        pencil ribbon rope sword shield wheel ladder barrel bucket fence gate wall roof floor
        kitchen cellar attic meadow desert shore cave hill path
    """,
    "NNP": "alice bob carol dave emma frank grace henry iris jack kate leo mia noah olga paul "
    "rosa sam tina victor",
    "JJ": """
        big small old young happy sad red blue green black white tall short quick slow brave
        quiet loud dark bright cold warm heavy soft hard clever lazy angry calm gentle strange
        famous rich poor hungry tired busy empty proud shy wild tiny huge new ancient fresh
        sweet bitter clean dirty lucky kind cruel honest fierce pale golden wooden silent
    """,
    "RB": "quickly slowly often rarely quietly loudly happily sadly suddenly carefully gladly "
    "always never sometimes soon again early late eagerly badly",
    "VBD@t": """
        saw liked found took made held chased followed watched helped visited painted built
        broke carried opened closed bought sold wrote cooked fed caught lifted pushed pulled
        kicked loved hated met called greeted admired ignored remembered forgot cleaned washed
        fixed hid moved dropped threw kept sent brought wanted needed touched hit dug filled
        climbed crossed
    """,
    "VBD@i": """
        slept arrived laughed smiled cried danced sang waited left fell ran walked jumped swam
        sneezed coughed vanished appeared shouted whispered paused rested worked played escaped
        returned stayed trembled shivered yawned wandered hurried failed slipped barked howled
        snored frowned sighed
    """,
    "VBD@s": "said thought believed knew hoped claimed realized suspected doubted announced "
    "guessed assumed argued admitted denied explained insisted reported wondered feared",
}

# Made-up words: onsets, nuclei and codas (space-separated; "-" is no coda), syllables per
# word, and a suffix per tag.
_PSEUDO: dict[str, tuple[str, str, str, tuple[int, int], dict[str, str]]] = {
    "english": (
        "b bl br d dr f fl fr g gl gr h k l m n p pl pr r s sk sl sm sn sp st t tr v w",
        "a e i o u ai ee oo ou",
        "- b d g k l m n p r s t nd nt st sh ck",
        (1, 2),
        {"JJ": "ish", "RB": "ly", "VBD": "ed"},
    ),
    "other": (
        "k s t n h m y r w g z d b p",
        "a i u e o",
        "- - - n",
        (2, 3),
        {"JJ": "i", "RB": "ku", "VBD": "ta"},
    ),
}


def _parse_rules(text: str) -> list[Rule]:
    rules = []
    for line in text.strip().splitlines():
        left, _, right = line.partition("->")
        *rhs, weight = right.split()
        grows = weight == "grow"
        if grows:
            *rhs, weight = rhs
        rules.append(Rule(left.strip(), tuple(rhs), float(weight), grows))
    return rules


def _pseudo_words(
    n: int, *, family: str, tag: str, used: set[str], closed: bool = False
) -> list[str]:
    """``n`` made-up words new to ``used`` (which they are added to); deterministic."""
    onset_text, nucleus_text, coda_text, (low, high), suffixes = _PSEUDO[family]
    onsets, nuclei = onset_text.split(), nucleus_text.split()
    codas = [c.strip("-") for c in coda_text.split()]
    rng = random.Random(f"seqae.tree.grammar/{family}/{tag}/{closed}")
    suffix = "" if closed else suffixes.get(label_of(tag), "")
    syllables = (1, 1) if closed else (low, high)
    words: list[str] = []
    for _ in range(200 * n + 1000):
        if len(words) == n:
            break
        count = rng.randint(*syllables)
        parts = []
        for k in range(count):
            # English-like syllables may close anywhere; the other family's only at the end
            coda = rng.choice(codas) if family == "english" or k == count - 1 else ""
            parts.append(rng.choice(onsets) + rng.choice(nuclei) + coda)
        word = "".join(parts) + suffix
        if word not in used and len(word) >= 2:
            used.add(word)
            words.append(word)
    if len(words) < n:
        raise GrammarError(f"cannot make up {n} distinct {tag} words; lower vocab_size")
    return words


def _lexicon(family: str, vocab_size: int) -> dict[str, tuple[str, ...]]:
    """Category -> its words (most frequent first), ``vocab_size`` distinct words in all."""
    lexicon: dict[str, tuple[str, ...]] = {}
    used: set[str] = set()
    if family == "english":
        for tag, words in _ENGLISH_CLOSED.items():
            lexicon[tag] = tuple(words.split())
            used.update(lexicon[tag])
    else:
        for tag, size in _OTHER_CLOSED.items():
            lexicon[tag] = tuple(
                _pseudo_words(size, family=family, tag=tag, used=used, closed=True)
            )
    n_open = vocab_size - len(used)
    if n_open < len(_OPEN_SHARES):
        raise GrammarError(
            f"vocab_size {vocab_size} is too small for the {family} grammar: its closed classes "
            f"take {len(used)} words and each of its {len(_OPEN_SHARES)} open classes needs one; "
            f"expected vocab_size >= {len(used) + len(_OPEN_SHARES)}"
        )
    # largest-remainder split of the open words, at least one per class
    shares = {tag: 1 + (n_open - len(_OPEN_SHARES)) * s for tag, s in _OPEN_SHARES.items()}
    sizes = {tag: int(v) for tag, v in shares.items()}
    by_remainder = sorted(shares, key=lambda t: (sizes[t] - shares[t], t))
    for tag in by_remainder[: n_open - sum(sizes.values())]:
        sizes[tag] += 1
    for tag, size in sizes.items():
        known = _ENGLISH_OPEN[tag].split() if family == "english" else []
        words = [w for w in known if w not in used][:size]
        used.update(words)
        words += _pseudo_words(size - len(words), family=family, tag=tag, used=used)
        lexicon[tag] = tuple(words)
    return lexicon


def _transform(rules: list[Rule], *, mirror: bool, binary: bool) -> list[Rule]:
    """Mirror and/or right-factor the rules (intermediate symbols named ``A'@<rule>.<k>``)."""
    out: list[Rule] = []
    for index, rule in enumerate(rules):
        rhs = rule.rhs[::-1] if mirror else rule.rhs
        if not binary or len(rhs) <= 2:
            out.append(rule._replace(rhs=rhs))
            continue
        lhs, weight, grows = rule.lhs, rule.weight, rule.grows
        for k in range(len(rhs) - 2):
            bar = f"{label_of(rule.lhs)}'@{index}.{k}"
            out.append(Rule(lhs, (rhs[k], bar), weight, grows))
            lhs, weight, grows = bar, 1.0, False
        out.append(Rule(lhs, rhs[-2:], 1.0, False))
    return out


class _Table(NamedTuple):
    """The rules of one symbol as a cumulative distribution."""

    rhs: tuple[tuple[str, ...], ...]
    cumulative: tuple[float, ...]


def _table(rules: Sequence[Rule], recursion: float) -> _Table | None:
    weights = [r.weight * (recursion if r.grows else 1.0) for r in rules]
    if sum(weights) <= 0:
        return None
    return _Table(tuple(r.rhs for r in rules), tuple(itertools.accumulate(weights)))


def _draw(rng: random.Random, cumulative: Sequence[float]) -> int:
    return min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(cumulative) - 1)


class _TooLong(Exception):
    """A derivation passed ``max_length`` words (it is abandoned)."""


class Grammar:
    """A probabilistic context-free grammar with a lexicon, built from settings.

    Args:
        settings: The family, size and shape (:class:`GrammarSettings`).

    Raises:
        GrammarError: A ``vocab_size`` too small for the family's closed classes.
    """

    #: The start symbol.
    start = "S"

    def __init__(self, settings: GrammarSettings | None = None) -> None:
        self.settings = settings = settings or GrammarSettings()
        base = _ENGLISH_RULES if settings.family == "english" else _OTHER_RULES
        #: Category -> its words, most frequent first.
        self.lexicon = _lexicon(settings.family, settings.vocab_size)
        #: The rules after ``mirror`` and ``binary``.
        self.rules: tuple[Rule, ...] = tuple(
            _transform(_parse_rules(base), mirror=settings.mirror, binary=settings.binary)
        )
        by_lhs: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_lhs.setdefault(rule.lhs, []).append(rule)
        self._check(by_lhs)
        self._tables: dict[tuple[str, bool], _Table] = {}
        for lhs, rules in by_lhs.items():
            for shallow in (True, False):
                table = _table(
                    [r for r in rules if shallow or not r.grows],
                    settings.recursion,
                )
                if table is not None:
                    self._tables[lhs, shallow] = table
        self._words: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
            tag: (
                words,
                tuple(itertools.accumulate((r + 1) ** -settings.zipf for r in range(len(words)))),
            )
            for tag, words in self.lexicon.items()
        }

    def _check(self, by_lhs: dict[str, list[Rule]]) -> None:
        """Every symbol is a phrase or a category; recursion only through ``grows`` rules."""
        for rule in self.rules:
            for symbol in rule.rhs:
                if symbol not in by_lhs and symbol not in self.lexicon:
                    raise AssertionError(f"grammar: {symbol!r} has no rule and no words")
        for lhs, rules in by_lhs.items():
            if all(r.grows for r in rules):
                raise AssertionError(f"grammar: {lhs} has only recursive rules")
        # the non-recursive rules must form no cycle, or max_depth could not stop a tree
        state: dict[str, int] = {}

        def visit(symbol: str) -> None:
            state[symbol] = 1
            for rule in by_lhs.get(symbol, []):
                if rule.grows:
                    continue
                for child in rule.rhs:
                    if state.get(child) == 1:
                        raise AssertionError(f"grammar: a cycle through {child} without recursion")
                    if child not in state:
                        visit(child)
            state[symbol] = 2

        visit(self.start)

    @property
    def vocabulary(self) -> list[str]:
        """Every word of the lexicon, sorted."""
        return sorted({w for words in self.lexicon.values() for w in words})

    def describe(self) -> dict[str, Any]:
        """The settings, the rules with their probabilities (recursion applied, before
        ``max_depth``) and the size of each category, as JSON-able data."""
        rules = []
        by_lhs: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_lhs.setdefault(rule.lhs, []).append(rule)
        for lhs, group in by_lhs.items():
            total = sum(r.weight * (self.settings.recursion if r.grows else 1.0) for r in group)
            for r in group:
                p = r.weight * (self.settings.recursion if r.grows else 1.0) / total
                rules.append(f"{lhs} -> {' '.join(r.rhs)}  {p:.3f}" + ("  (recursive)" * r.grows))
        return {
            "settings": dataclasses.asdict(self.settings),
            "rules": rules,
            "categories": {tag: len(words) for tag, words in self.lexicon.items()},
            "vocabulary_size": len(self.vocabulary),
        }

    # -- sampling --------------------------------------------------------------------------

    def _expand(self, symbol: str, depth: int, rng: random.Random, count: list[int]) -> Tree:
        if symbol in self._words:
            words, cumulative = self._words[symbol]
            count[0] += 1
            if count[0] > self.settings.max_length:
                raise _TooLong
            return Tree(label_of(symbol), (words[_draw(rng, cumulative)],))
        table = self._tables[symbol, depth < self.settings.max_depth]
        rhs = table.rhs[_draw(rng, table.cumulative)]
        children = tuple(self._expand(child, depth + 1, rng, count) for child in rhs)
        return Tree(label_of(symbol), children)

    def sample(self, rng: random.Random) -> Tree | None:
        """One derivation from ``S``: its tree, or ``None`` when its length falls outside
        ``[min_length, max_length]``.

        Args:
            rng: The random generator (its state advances).
        """
        count = [0]
        try:
            tree = self._expand(self.start, 0, rng, count)
        except _TooLong:
            return None
        return tree if count[0] >= self.settings.min_length else None

    def generate(
        self, n: int, *, seed: int = 0, unique: bool = True, max_tries: int | None = None
    ) -> list[Tree]:
        """``n`` sentences with their trees, within the length limits.

        Args:
            n: How many.
            seed: Seed of the sampling (the same seed gives the same trees).
            unique: Keep only the first derivation of each sentence (word sequence).
            max_tries: Most derivations to try (default ``50 * n + 1000``).

        Raises:
            GrammarError: Fewer than ``n`` (distinct) sentences of the allowed lengths came out
                of ``max_tries`` derivations.
        """
        if n < 0:
            raise GrammarError(f"generate: n must be >= 0, got {n}")
        rng = random.Random(seed)
        max_tries = 50 * n + 1000 if max_tries is None else max_tries
        trees: list[Tree] = []
        seen: set[tuple[str, ...]] = set()
        for _ in range(max_tries):
            if len(trees) == n:
                break
            tree = self.sample(rng)
            if tree is None:
                continue
            if unique:
                key = tuple(tree.leaves())
                if key in seen:
                    continue
                seen.add(key)
            trees.append(tree)
        if len(trees) < n:
            s = self.settings
            raise GrammarError(
                f"the {s.family} grammar gave only {len(trees)} "
                f"{'distinct ' if unique else ''}sentences of {s.min_length}-{s.max_length} "
                f"words in {max_tries} tries, {n} were asked for: widen the length range or "
                "raise vocab_size, recursion or max_depth"
            )
        return trees
