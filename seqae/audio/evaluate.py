"""Objective evaluation of one-shot voice conversion (``seqae vc-eval`` and the ``vc`` recipe).

For each target voice, ``pairs_per_target`` held-out sentences spoken by a training speaker (the
source) are converted to the target using ``n_references`` other utterances of the target (the
references; one-shot when 1). ``pair_voices`` (voices the model never heard) are also converted
to each other (every ordered pair, held-out sentences of the source): what a user does with two
voices the model never heard, grouped by whether the two are of the same sex
(``unseen_same_sex``, ``unseen_cross_sex``; ``unseen_pairs`` where a sex is not stated). Every conversion is scored, and so are two reference systems on
the same pairs:

- ``ceiling``: Griffin-Lim resynthesis of the target's own utterance of the sentence (what the
  vocoder allows when the model is perfect);
- ``floor``: the unconverted source.

Scores (:mod:`seqae.metrics.speech`):

- ``sim_target``: cosine of resemblyzer embeddings of the output and of the references (mean);
- ``sim_source``: cosine of the output and the source utterance;
- ``closer``: share of outputs with ``sim_target > sim_source``;
- each of the three with a bootstrap standard error and 95% interval over the conversions;
- ``wer``: pocketsphinx word error rate against the sentence text (corpus level);
- ``mcd``: mel-cepstral distortion (dB, DTW-aligned) against the target's parallel utterance.

And a disentanglement probe: a speaker classifier trained on content codes pooled over time
(per-channel mean and standard deviation; should be near chance) and on speaker embeddings
(should be near 1), split by sentence.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae.audio.corpus import recorded_speaker
from seqae.audio.dataset import SpeechCorpus, SpeechDataError, Utterance, load_features
from seqae.audio.features import log_mel
from seqae.audio.io import AudioFileError, load_audio, save_audio

__all__ = [
    "evaluate_conversion",
    "evaluate_reference_counts",
    "check_reference_counts",
    "heard_voices",
    "report_reference_counts",
    "format_table",
    "speaker_probe_features",
    "load_eval_pairs",
    "compare_evaluations",
    "format_comparison",
    "add_parser",
    "add_compare_parser",
]

SYSTEMS = ("converted", "ceiling", "floor")
#: Every group of conversions, in table order, with the name the tables give it.
GROUPS = {
    "seen": "seen",
    "unseen": "unseen",
    "unseen_same_sex": "unseen -> unseen, same sex",
    "unseen_cross_sex": "unseen -> unseen, other sex",
    "unseen_pairs": "unseen -> unseen, sex not stated",
}


def _index(corpus: SpeechCorpus) -> dict[tuple[str, str], Utterance]:
    return {(u.speaker, u.sentence_id): u for u in corpus.utterances}


def related_voices(corpus: SpeechCorpus, target: str) -> set[str]:
    """Speakers made from the same person's recordings as the target, and the target.

    These are the target's own pitch, duration and speed-perturbed variants, and the voices
    another engine built from the same recordings (flite ``kal16`` and festival
    ``kal_diphone``; flite ``slt`` and festival's slt HTS voice), with their variants:
    ``speakers.json`` ``engine`` and ``voice`` mapped through
    :func:`~seqae.audio.corpus.recorded_speaker`.

    Converting such a voice to the target is not a conversion between two voices: the source
    already sounds like the target (resemblyzer cosine 0.85 before any conversion), so "closer to
    the target than to the source" is ill-posed. Evaluation draws its sources from the others.
    A corpus without synthesiser settings (VCTK) relates each speaker to itself only.
    """

    def person(speaker: str) -> str | None:
        settings = corpus.speaker_info.get(speaker, {}).get("settings", {})
        engine, voice = settings.get("engine"), settings.get("voice")
        return None if engine is None or voice is None else recorded_speaker(engine, voice)

    key = person(target)
    if key is None:
        return {target}
    return {target} | {spk for spk in corpus.speaker_info if person(spk) == key}


def _references(
    rng: random.Random, others: Sequence[str], n_references: int, *, stream: str
) -> list[str]:
    """``n_references`` of the sentences ``others``: the first from ``rng``, further ones from a
    stream of their own (seeded by ``stream``), so the pairs (source, sentence, first reference)
    do not depend on how many references there are: evaluations with 1 and with 2 references
    are paired."""
    refs = rng.sample(list(others), 1)
    if n_references > 1:
        extra = random.Random(stream)
        refs += extra.sample([s for s in others if s != refs[0]], n_references - 1)
    return refs


def make_pairs(
    corpus: SpeechCorpus,
    targets: Sequence[str],
    *,
    sources: Sequence[str],
    sentences: Sequence[str],
    pairs_per_target: int,
    n_references: int,
    seed: int,
    exclude: Mapping[str, Collection[str]] | None = None,
) -> list[dict[str, Any]]:
    """Conversion pairs: source utterance, target references (other sentences), parallel ref.

    ``exclude[target]`` names speakers never used as a source for ``target`` (besides itself).
    For a given seed the sources, sentences and first references are the same whatever
    ``n_references`` is; more references only add to them.
    """
    index = _index(corpus)
    rng = random.Random(seed)
    pairs = []
    for target in targets:
        banned = {target, *((exclude or {}).get(target, ()))}
        target_sents = [s for s in sentences if (target, s) in index]
        if len(target_sents) < n_references + 1:
            raise SpeechDataError(
                f"target {target!r} has {len(target_sents)} held-out utterances; need "
                f"n_references + 1 = {n_references + 1}"
            )
        order = rng.sample(target_sents, len(target_sents))
        for k in range(pairs_per_target):
            sent = order[k % len(order)]
            cands = [s for s in sources if (s, sent) in index and s not in banned]
            if not cands:
                continue
            src = rng.choice(cands)
            others = [s for s in target_sents if s != sent]
            refs = _references(rng, others, n_references, stream=f"{seed}:{target}:{k}")
            pairs.append(
                {
                    "target": target,
                    "source": index[(src, sent)],
                    "parallel": index[(target, sent)],
                    "references": [index[(target, s)] for s in refs],
                }
            )
    return pairs


def voice_pair_group(corpus: SpeechCorpus, source: str, target: str) -> str:
    """``unseen_same_sex``, ``unseen_cross_sex``, or ``unseen_pairs`` when either voice's sex
    is not stated (:meth:`SpeechCorpus.sex`)."""
    a, b = corpus.sex(source), corpus.sex(target)
    if a is None or b is None:
        return "unseen_pairs"
    return "unseen_same_sex" if a == b else "unseen_cross_sex"


def heard_voices(model: torch.nn.Module, corpus: SpeechCorpus) -> list[str]:
    """The corpus voices ``model`` was trained on, in the corpus's order: the voices its
    training recorded (:attr:`~seqae.audio.vc_base.VoiceConversionModel.training_speakers`),
    or, for a model that did not record them, every voice of the corpus's ``train`` role.

    A run trained on part of the corpus (``data.sources``, ``data.max_speakers``) never heard
    the rest, so those voices can be evaluated as new ones (``pair_voices``), and only the
    voices it heard are conversion sources."""
    recorded = getattr(model, "training_speakers", None)
    if recorded is None:
        return corpus.speakers_with_role("train")
    heard = set(recorded)
    return [s for s in corpus.speakers if s in heard]


def make_voice_pairs(
    corpus: SpeechCorpus,
    voices: Sequence[str],
    *,
    sentences: Sequence[str],
    pairs_per_target: int,
    n_references: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Conversions between the ``voices`` themselves: for every ordered pair (source, target)
    of voices not made from the same person's recordings (:func:`related_voices`), up to
    ``pairs_per_target`` sentences both have said (a seeded order), each converted with
    ``n_references`` of the target's other utterances. Each pair carries its ``group``
    (:func:`voice_pair_group`). As in :func:`make_pairs`, the sentences and first references do
    not depend on ``n_references``."""
    index = _index(corpus)
    rng = random.Random(seed)
    pairs = []
    for target in voices:
        target_sents = [s for s in sentences if (target, s) in index]
        if len(target_sents) < n_references + 1:
            raise SpeechDataError(
                f"voice {target!r} has {len(target_sents)} held-out utterances; need "
                f"n_references + 1 = {n_references + 1}"
            )
        related = related_voices(corpus, target)
        for source in voices:
            if source in related:
                continue
            shared = [s for s in target_sents if (source, s) in index]
            order = rng.sample(shared, len(shared))
            for k, sent in enumerate(order[:pairs_per_target]):
                others = [s for s in target_sents if s != sent]
                stream = f"{seed}:{source}:{target}:{k}"
                refs = _references(rng, others, n_references, stream=stream)
                pairs.append(
                    {
                        "group": voice_pair_group(corpus, source, target),
                        "target": target,
                        "source": index[(source, sent)],
                        "parallel": index[(target, sent)],
                        "references": [index[(target, s)] for s in refs],
                    }
                )
    return pairs


@torch.no_grad()
def speaker_probe_features(
    model: torch.nn.Module, utterances: Sequence[Utterance], mels: Sequence[torch.Tensor]
) -> tuple[np.ndarray, np.ndarray]:
    """Time-pooled content codes ``(N, 2C)`` and speaker embeddings ``(N, S)`` of utterances.

    A content code is pooled by its per-channel mean and standard deviation over time: models
    that instance-normalise their content path make the time mean alone nearly constant, so a
    probe on it would be at chance whatever the code carries.
    """
    was = model.training
    model.eval()
    content, speaker = [], []
    for m in mels:
        x = model.normalizer(m)[None]
        z = model.encode_content(x).z[0].float()  # (C, T')
        content.append(torch.cat([z.mean(-1), z.std(-1, unbiased=False)]).cpu().numpy())
        speaker.append(model.encode_speaker(x)[0].float().cpu().numpy())
    model.train(was)
    return np.stack(content), np.stack(speaker)


def evaluate_conversion(
    converter: Any,
    corpus: SpeechCorpus,
    *,
    seen_targets: Sequence[str],
    unseen_targets: Sequence[str],
    pairs_per_target: int = 20,
    n_references: int = 1,
    seed: int = 0,
    samples_dir: str | Path | None = None,
    n_samples: int = 4,
    probe: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    source_kinds: Sequence[str] | None = None,
    exclude_related: bool = True,
    pair_voices: Sequence[str] = (),
) -> dict[str, Any]:
    """Convert held-out sentences to seen and unseen target voices and score everything.

    Args:
        converter: A :class:`~seqae.audio.convert.VoiceConverter`.
        corpus: The corpus (``test`` sentences of its ``corpus.json`` split are used; all
            sentences when it has none).
        seen_targets: Target voices the model was trained on.
        unseen_targets: Target voices it never heard.
        pairs_per_target: Conversions per target voice.
        n_references: Reference utterances of the target per conversion.
        seed: Seed of the pair choice.
        samples_dir: Where to write a few converted wavs (with their source and references).
        n_samples: Conversions per group written to ``samples_dir``.
        probe: Also run the speaker probe on content codes and speaker embeddings.
        cache_dir: Log-mel cache for the probe.
        progress: Show a progress bar.
        source_kinds: Draw sources only from training speakers whose ``speakers.json`` source is
            one of these (e.g. ``["flite", "festival", "perturbed"]``: voices the recogniser
            reads well, so WER measures what conversion loses); None: every training speaker.
        exclude_related: Never convert from a voice made from the target's own recordings:
            its variants, or another engine's voice of the same person (:func:`related_voices`).
        pair_voices: Voices the model never heard, converted to each other
            (:func:`make_voice_pairs`; groups ``unseen_same_sex`` and ``unseen_cross_sex``);
            empty: none.

    Returns:
        ``{"summary": {...}, "pairs": [per-pair rows], "example": {mels for a figure}}``.
    """
    by_count = evaluate_reference_counts(
        converter,
        corpus,
        counts=[n_references],
        seen_targets=seen_targets,
        unseen_targets=unseen_targets,
        pairs_per_target=pairs_per_target,
        seed=seed,
        samples_dir=samples_dir,
        n_samples=n_samples,
        probe=probe,
        cache_dir=cache_dir,
        progress=progress,
        source_kinds=source_kinds,
        exclude_related=exclude_related,
        pair_voices=pair_voices,
    )
    return by_count[n_references]


def check_reference_counts(counts: Sequence[int]) -> list[int]:
    """``counts`` as a list, if it is a non-empty list of distinct integer counts >= 1.

    Raises:
        ValueError: Empty, a repeated count, a count below 1, or one that is not an integer.
    """
    counts = list(counts)
    if (
        not counts
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in counts)
        or len(set(counts)) != len(counts)
    ):
        raise ValueError(f"counts must be distinct reference counts >= 1, got {counts!r}")
    return counts


@torch.no_grad()
def evaluate_reference_counts(
    converter: Any,
    corpus: SpeechCorpus,
    *,
    counts: Sequence[int],
    seen_targets: Sequence[str],
    unseen_targets: Sequence[str],
    pairs_per_target: int = 20,
    seed: int = 0,
    samples_dir: str | Path | None = None,
    n_samples: int = 4,
    probe: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    source_kinds: Sequence[str] | None = None,
    exclude_related: bool = True,
    pair_voices: Sequence[str] = (),
) -> dict[int, dict[str, Any]]:
    """:func:`evaluate_conversion` with each of several reference counts, on the same pairs.

    For a given seed, :func:`make_pairs` draws the same sources, sentences and first references
    whatever the count, so the counts differ only in the references the model is given. The
    ceiling and the floor do not depend on the references (only their similarity to them does),
    so each is synthesised, transcribed and scored once per pair, not once per count. The probe,
    the samples and the figure's example come with the first count.

    Returns:
        ``{count: {"summary", "pairs", "example"}}``, in the order of ``counts``; each is what
        :func:`evaluate_conversion` returns for that count.

    Raises:
        ValueError: ``counts`` is empty, repeats a count, or holds one below 1.
    """
    from seqae.metrics.speech import (
        SpeakerEmbedder,
        Transcriber,
        mel_cepstral_distortion,
        speaker_probe,
    )
    from seqae.training import progress as progress_bar

    counts = check_reference_counts(counts)
    missing = [
        s for s in (*seen_targets, *unseen_targets, *pair_voices) if s not in corpus.speakers
    ]
    if missing:
        raise SpeechDataError(
            f"{corpus.root}: target voice(s) {missing} not in the corpus; it has {corpus.speakers}"
        )
    test_sents = corpus.sentence_split("test")
    sentences = sorted(test_sents or {u.sentence_id for u in corpus.utterances})
    heard = heard_voices(converter.model, corpus)
    sources = [s for s in heard if s not in set(seen_targets) | set(unseen_targets)]
    if source_kinds is not None:
        sources = [s for s in sources if corpus.source(s) in set(source_kinds)]
        if not sources:
            raise SpeechDataError(
                f"{corpus.root}: no training speaker has a source in {list(source_kinds)}"
            )
    sr, dev = converter.feature_config.sample_rate, converter.device
    embedder = SpeakerEmbedder()
    transcriber = Transcriber()
    wav_cache: dict[Path, torch.Tensor] = {}
    emb_cache: dict[Path, np.ndarray] = {}
    text_cache: dict[Path, str] = {}

    def wav(u: Utterance) -> torch.Tensor:
        if u.path not in wav_cache:
            wav_cache[u.path] = load_audio(u.path, sample_rate=sr)
        return wav_cache[u.path]

    def emb(u: Utterance) -> np.ndarray:
        if u.path not in emb_cache:
            emb_cache[u.path] = embedder.embed(wav(u))
        return emb_cache[u.path]

    def scored(out: torch.Tensor, parallel: Utterance) -> dict[str, Any]:
        """What a system's output is scored with, whatever the references."""
        return {
            "embedding": embedder.embed(out),
            "hypothesis": transcriber.transcribe(out),
            "mcd": float(mel_cepstral_distortion(wav(parallel), out, sample_rate=sr)),
        }

    rows: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    example: dict[str, Any] = {}
    # group -> one list of pairs per reference count, aligned (the same conversions)
    plan: dict[str, list[list[dict[str, Any]]]] = {}
    for group, targets in (("seen", seen_targets), ("unseen", unseen_targets)):
        if not targets:
            continue
        exclude = {t: related_voices(corpus, t) for t in targets} if exclude_related else None
        plan[group] = [
            make_pairs(
                corpus,
                targets,
                sources=sources,
                sentences=sentences,
                pairs_per_target=pairs_per_target,
                n_references=count,
                seed=seed + (0 if group == "seen" else 1),
                exclude=exclude,
            )
            for count in counts
        ]
    heard_set = set(heard)
    trained = [v for v in pair_voices if v in heard_set]
    if trained:
        raise SpeechDataError(
            f"{corpus.root}: pair voices {trained} are training voices of the model; conversion "
            "between voices the model never heard needs voices it was not trained on"
        )
    if len(pair_voices) >= 2:
        pair_sets = [
            make_voice_pairs(
                corpus,
                list(pair_voices),
                sentences=sentences,
                pairs_per_target=pairs_per_target,
                n_references=count,
                seed=seed + 2,
            )
            for count in counts
        ]
        for group in sorted({p["group"] for p in pair_sets[0]}):
            plan[group] = [[p for p in pairs if p["group"] == group] for pairs in pair_sets]
    groups = {group: sorted({p["target"] for p in sets[0]}) for group, sets in plan.items()}
    for group, pair_sets in plan.items():
        aligned = list(zip(*pair_sets, strict=True))
        for k, same in enumerate(progress_bar(aligned, desc=f"vc-eval {group}", enabled=progress)):
            src, par = same[0]["source"], same[0]["parallel"]
            if any(p["source"] != src or p["parallel"] != par for p in same):
                raise RuntimeError("make_pairs drew different sources for different counts")
            with torch.inference_mode():
                ceiling = converter.vocoder(log_mel(wav(par), converter.feature_config).to(dev))
            if src.path not in text_cache:
                text_cache[src.path] = transcriber.transcribe(wav(src))
            shared = {
                "ceiling": scored(ceiling.float().cpu(), par),
                "floor": {
                    "embedding": emb(src),
                    "hypothesis": text_cache[src.path],
                    "mcd": float(mel_cepstral_distortion(wav(par), wav(src), sample_rate=sr)),
                },
            }
            for i, (count, p) in enumerate(zip(counts, same, strict=True)):
                refs = p["references"]
                ref_emb = np.mean([emb(r) for r in refs], axis=0)
                ref_emb = ref_emb / np.linalg.norm(ref_emb)
                converted = converter.convert_wav(wav(src), [wav(r) for r in refs])
                systems = {"converted": scored(converted, par), **shared}
                for system in SYSTEMS:
                    s = systems[system]
                    sim_t = float(np.dot(s["embedding"], ref_emb))
                    sim_s = float(np.dot(s["embedding"], emb(src)))
                    rows[count].append(
                        {
                            "group": group,
                            "system": system,
                            "target": p["target"],
                            "source": src.speaker,
                            "source_kind": corpus.source(src.speaker),
                            "sentence": src.sentence_id,
                            "references": [r.utt_id for r in refs],
                            "sim_target": sim_t,
                            "sim_source": sim_s,
                            "closer": sim_t > sim_s,
                            "reference_text": src.text or "",
                            "hypothesis": s["hypothesis"],
                            "mcd": s["mcd"],
                        }
                    )
                if i > 0:
                    continue
                if samples_dir is not None and k < n_samples:
                    stem = f"{group}_{k:02d}_{src.utt_id}_to_{p['target']}"
                    d = Path(samples_dir)
                    save_audio(d / f"{stem}.converted.wav", converted, sr)
                    save_audio(d / f"{stem}.source.wav", wav(src), sr)
                    save_audio(d / f"{stem}.reference.wav", wav(refs[0]), sr)
                if not example and group == "seen":
                    example = {
                        "source": log_mel(wav(src), converter.feature_config).numpy(),
                        "source_name": src.utt_id,
                        "reference": log_mel(wav(refs[0]), converter.feature_config).numpy(),
                        "reference_name": refs[0].utt_id,
                        "converted": log_mel(converted, converter.feature_config).numpy(),
                        "converted_name": f"{src.utt_id} in the voice of {p['target']}",
                    }

    settings = {
        "pairs_per_target": pairs_per_target,
        "source_kinds": list(source_kinds) if source_kinds is not None else None,
        "exclude_related": exclude_related,
        "pair_voices": list(pair_voices),
        "match_stats": getattr(converter, "match_stats", "none"),
        "spread_weight": getattr(converter, "spread_weight", None),
    }
    results = {}
    for count in counts:
        summary = {"n_references": count, **settings}
        summary |= _summarize(rows[count], groups, seed=seed)
        results[count] = {"summary": summary, "pairs": rows[count], "example": example}
    if probe:
        utts = corpus.select(role="train", split="test")
        mels = load_features(utts, converter.feature_config, cache_dir=cache_dir)
        content, speaker = speaker_probe_features(converter.model, utts, mels)
        labels = [u.speaker for u in utts]
        sentence_groups = [u.sentence_id for u in utts]
        results[counts[0]]["summary"]["probe"] = {
            "content": speaker_probe(content, labels, sentence_groups, seed=seed),
            "speaker_embedding": speaker_probe(speaker, labels, sentence_groups, seed=seed),
        }
    return results


def _summarize(
    rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]], *, seed: int
) -> dict[str, Any]:
    """Per group and system: mean similarities, share closer, WER with its interval, MCD."""
    from seqae.metrics.bootstrap import bootstrap_ratio
    from seqae.metrics.speech import corpus_wer, corpus_wer_bootstrap

    def wer_of(sel: list[Mapping[str, Any]]) -> float:
        return float(corpus_wer([r["reference_text"] for r in sel], [r["hypothesis"] for r in sel]))

    def wer_with_interval(sel: list[Mapping[str, Any]]) -> dict[str, Any]:
        iv = corpus_wer_bootstrap(
            [r["reference_text"] for r in sel], [r["hypothesis"] for r in sel], seed=seed
        )
        return {"wer": iv.wer, "wer_se": iv.se, "wer_low": iv.low, "wer_high": iv.high}

    def mean_with_interval(sel: list[Mapping[str, Any]], key: str) -> dict[str, Any]:
        iv = bootstrap_ratio([float(r[key]) for r in sel], seed=seed, who="vc-eval")
        return {key: iv.estimate, f"{key}_se": iv.se, f"{key}_low": iv.low, f"{key}_high": iv.high}

    summary: dict[str, Any] = {}
    for group in groups:
        for system in SYSTEMS:
            sel = [r for r in rows if r["group"] == group and r["system"] == system]
            if not sel:
                continue
            summary.setdefault(group, {})[system] = {
                "n": len(sel),
                **mean_with_interval(sel, "sim_target"),
                **mean_with_interval(sel, "sim_source"),
                **mean_with_interval(sel, "closer"),
                **wer_with_interval(sel),
                "mcd": float(np.mean([r["mcd"] for r in sel])),
            }
        conv = [r for r in rows if r["group"] == group and r["system"] == "converted"]
        if conv:
            summary[group]["per_target"] = {
                t: {
                    "sim_target": float(
                        np.mean([r["sim_target"] for r in conv if r["target"] == t])
                    ),
                    "closer": float(np.mean([r["closer"] for r in conv if r["target"] == t])),
                }
                for t in sorted({r["target"] for r in conv})
            }
            # the recogniser reads some synthesisers far better than others, so the WER of a
            # group depends on its mix of source kinds: give it per kind, converted and floor
            by_kind: dict[str, Any] = {}
            for kind in sorted({r["source_kind"] for r in conv}):
                of_kind = [r for r in rows if r["group"] == group and r["source_kind"] == kind]
                by_kind[kind] = {
                    system: wer_of([r for r in of_kind if r["system"] == system])
                    for system in ("converted", "floor")
                }
                by_kind[kind]["n"] = sum(r["system"] == "converted" for r in of_kind)
            summary[group]["wer_by_source_kind"] = by_kind
    return summary


def report_reference_counts(
    results: Mapping[int, Mapping[str, Any]], *, seed: int = 0
) -> dict[str, Any]:
    """Tables, rows and summaries of :func:`evaluate_reference_counts`' result.

    Each count after the first is compared with the first on the same conversions
    (:func:`compare_evaluations` with ``same_references=False``); the comparison goes into that
    count's summary as ``against_first`` and into the tables.

    Returns:
        ``{"tables": [markdown], "rows": [every row, with its n_references],
        "by_count": {"1": summary, ...}}``.
    """
    counts = list(results)
    first = results[counts[0]]["pairs"]
    tables, rows, by_count = [], [], {}
    for i, count in enumerate(counts):
        summary = dict(results[count]["summary"])
        tables.append(format_table(summary))
        rows += [r | {"n_references": count} for r in results[count]["pairs"]]
        if i > 0:
            comparison = compare_evaluations(
                first, results[count]["pairs"], seed=seed, same_references=False
            )
            summary["against_first"] = comparison
            tables.append(
                format_comparison(comparison, f"{counts[0]} reference(s)", f"{count} reference(s)")
            )
        by_count[str(count)] = summary
    return {"tables": tables, "rows": rows, "by_count": by_count}


def _wer_cell(r: Mapping[str, Any]) -> str:
    # summaries written before the bootstrap was added have no s.e.
    return f"{r['wer']:.3f}" + (f" ± {r['wer_se']:.3f}" if "wer_se" in r else "")


def _mean_cell(r: Mapping[str, Any], key: str, digits: int) -> str:
    # summaries written before the intervals were added have none
    cell = f"{r[key]:.{digits}f}"
    if f"{key}_low" in r:
        cell += f" [{r[f'{key}_low']:.{digits}f}, {r[f'{key}_high']:.{digits}f}]"
    return cell


def _matching_phrase(summary: Mapping[str, Any]) -> str:
    mode = summary.get("match_stats", "none")
    if mode == "none":
        return ""
    weight = summary.get("spread_weight")
    spread = f", spread weight {weight:g}" if mode == "mean_std" and weight is not None else ""
    return f"; output matched to the references' log-mel statistics ({mode}{spread})"


def format_table(summary: dict[str, Any]) -> str:
    """The evaluation summary as a Markdown table (and the probe line)."""
    lines = [
        f"One-shot conversion, {summary.get('n_references', 1)} reference(s), "
        f"{summary.get('pairs_per_target')} held-out sentences per target voice, sources: "
        f"{', '.join(summary.get('source_kinds') or ['all training voices'])}"
        + (" except voices of the target's own speaker" if summary.get("exclude_related") else "")
        + _matching_phrase(summary),
        "",
        "| targets | system | n | sim to target | sim to source | closer to target | WER ± s.e. "
        "| MCD (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, name in GROUPS.items():
        for system in SYSTEMS:
            r = summary.get(group, {}).get(system)
            if r is None:
                continue
            lines.append(
                f"| {name} | {system} | {r['n']} | {_mean_cell(r, 'sim_target', 3)} "
                f"| {_mean_cell(r, 'sim_source', 3)} | {_mean_cell(r, 'closer', 2)} "
                f"| {_wer_cell(r)} | {r['mcd']:.2f} |"
            )
    for group in GROUPS:
        per = summary.get(group, {}).get("per_target")
        if per:
            parts = ", ".join(
                f"{t}: sim {v['sim_target']:.3f}, closer {v['closer']:.2f}" for t, v in per.items()
            )
            lines.append(f"\n{group} targets, converted: {parts}")
    for group in GROUPS:
        by_kind = summary.get(group, {}).get("wer_by_source_kind")
        if by_kind:
            parts = ", ".join(
                f"{k} {v['converted']:.3f} / {v['floor']:.3f} (n {v['n']})"
                for k, v in by_kind.items()
            )
            lines.append(f"\n{group} targets, WER by source kind (converted / floor): {parts}")
    if "probe" in summary:
        c, s = summary["probe"]["content"], summary["probe"]["speaker_embedding"]
        lines.append(
            f"\nSpeaker probe (logistic regression, split by sentence; chance {c['chance']:.3f}): "
            f"content codes {c['accuracy']:.3f}, speaker embeddings {s['accuracy']:.3f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Comparing two evaluations pair for pair (``seqae vc-compare``)
# --------------------------------------------------------------------------------------------

# what makes a conversion (its source utterance, for a target) and what makes a pair (with
# the references it was given)
_CONVERSION_FIELDS = ("group", "system", "target", "source", "sentence")
_PAIR_FIELDS = (*_CONVERSION_FIELDS, "references")


def load_eval_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The per-pair rows of an evaluation: ``vc-eval``'s eval.json, the recipe's eval_pairs.json,
    or a folder holding either.

    Raises:
        SpeechDataError: The file is missing, not JSON, or holds no evaluation rows.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("eval.json", "eval_pairs.json") if (path / n).is_file()]
        if not found:
            raise SpeechDataError(
                f"{path}: no eval.json (seqae vc-eval --out) or eval_pairs.json (seqae run vc) in "
                "this folder"
            )
        path = found[0]
    if not path.is_file():
        raise SpeechDataError(f"{path}: no such evaluation file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpeechDataError(f"{path}: not a JSON evaluation file ({e})") from e
    rows = data.get("pairs") if isinstance(data, dict) else data
    need = {*_PAIR_FIELDS, "sim_target", "closer", "reference_text", "hypothesis"}
    if (
        not isinstance(rows, list)
        or not rows
        or not all(isinstance(r, dict) and need <= r.keys() for r in rows)
    ):
        raise SpeechDataError(
            f"{path}: expected a list of evaluation rows with fields {sorted(need)} (the 'pairs' "
            "of seqae vc-eval's eval.json, or the recipe's eval_pairs.json)"
        )
    return rows


def _keyed(
    rows: Sequence[Mapping[str, Any]], fields: Sequence[str] = _PAIR_FIELDS
) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    # the same pair can be drawn twice; its k-th draw matches the other run's k-th draw
    seen: dict[tuple[Any, ...], int] = {}
    out = {}
    for r in rows:
        key = tuple(tuple(r[f]) if isinstance(r[f], list) else r[f] for f in fields)
        k = seen[key] = seen.get(key, -1) + 1
        out[(*key, k)] = r
    return out


def compare_evaluations(
    rows_a: Sequence[Mapping[str, Any]],
    rows_b: Sequence[Mapping[str, Any]],
    *,
    system: str = "converted",
    n_boot: int = 2000,
    seed: int = 0,
    same_references: bool = True,
) -> dict[str, Any]:
    """Compare two evaluations on the conversion pairs they share (B against A).

    Two models evaluated with the same corpus, targets, pair count and seed are scored on the
    same pairs, so their difference can be read pair for pair: WER with a paired bootstrap
    (:func:`seqae.metrics.speech.paired_wer_difference`), similarity to the target and the
    share closer to it as means of per-pair differences with their standard errors. This
    resolves differences that two separate tables cannot: on 120 pairs each WER is uncertain by
    about 0.02, the paired difference by about half that.

    With ``same_references=False`` a pair is matched by group, target, source and sentence
    alone, which compares one conversion made with different references: evaluations with 1
    and with 2 references and the same seed convert the same sources (:func:`make_pairs`).

    Returns:
        ``{group: {"n", "wer_a", "wer_b", "wer_diff", "wer_diff_se", "wer_diff_low",
        "wer_diff_high", "sim_target_a", "sim_target_b", "sim_target_diff",
        "sim_target_diff_se", "closer_a", "closer_b", "closer_diff", "closer_diff_se"}}`` for
        each group with shared pairs, plus ``"unmatched": [pairs only in A, pairs only in B]``.

    Raises:
        ValueError: The two evaluations share no pair of this system (other corpus, targets,
            pair count or seed).
    """
    from seqae.metrics.speech import corpus_wer, paired_wer_difference

    fields = _PAIR_FIELDS if same_references else _CONVERSION_FIELDS
    a = {k: r for k, r in _keyed(rows_a, fields).items() if r["system"] == system}
    b = {k: r for k, r in _keyed(rows_b, fields).items() if r["system"] == system}
    shared = [k for k in a if k in b]
    if not shared:
        raise ValueError(
            f"the two evaluations share no {system!r} pair; compare runs evaluated with the "
            "same corpus, targets, --pairs, --references and --seed"
        )
    out: dict[str, Any] = {"unmatched": [len(a) - len(shared), len(b) - len(shared)]}
    for group in sorted({k[0] for k in shared}):
        keys = [k for k in shared if k[0] == group]
        ra, rb = [a[k] for k in keys], [b[k] for k in keys]
        refs = [r["reference_text"] for r in ra]
        hyp_a, hyp_b = [r["hypothesis"] for r in ra], [r["hypothesis"] for r in rb]
        diff = paired_wer_difference(refs, hyp_a, hyp_b, n_boot=n_boot, seed=seed)
        res: dict[str, Any] = {
            "n": len(keys),
            "wer_a": corpus_wer(refs, hyp_a),
            "wer_b": corpus_wer(refs, hyp_b),
            "wer_diff": diff.wer,
            "wer_diff_se": diff.se,
            "wer_diff_low": diff.low,
            "wer_diff_high": diff.high,
        }
        for field in ("sim_target", "closer"):
            xa = np.array([float(r[field]) for r in ra])
            xb = np.array([float(r[field]) for r in rb])
            d = xb - xa
            res[f"{field}_a"], res[f"{field}_b"] = float(xa.mean()), float(xb.mean())
            res[f"{field}_diff"] = float(d.mean())
            res[f"{field}_diff_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        out[group] = res
    return out


def format_comparison(result: Mapping[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """A :func:`compare_evaluations` result as a Markdown table."""
    lines = [
        f"B - A on shared conversion pairs (A: {name_a}; B: {name_b}); differences ± s.e.; "
        "WER by paired bootstrap with its 95% interval",
        "",
        "| targets | n | WER A | WER B | WER B - A | sim A | sim B | sim B - A "
        "| closer A | closer B | closer B - A |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, r in result.items():
        if group == "unmatched":
            continue
        lo, hi = r["wer_diff_low"], r["wer_diff_high"]
        lines.append(
            f"| {group} | {r['n']} | {r['wer_a']:.3f} | {r['wer_b']:.3f} "
            f"| {r['wer_diff']:+.3f} ± {r['wer_diff_se']:.3f} [{lo:+.3f}, {hi:+.3f}] "
            f"| {r['sim_target_a']:.3f} | {r['sim_target_b']:.3f} "
            f"| {r['sim_target_diff']:+.3f} ± {r['sim_target_diff_se']:.3f} "
            f"| {r['closer_a']:.2f} | {r['closer_b']:.2f} "
            f"| {r['closer_diff']:+.2f} ± {r['closer_diff_se']:.2f} |"
        )
    only_a, only_b = result["unmatched"]
    if only_a or only_b:
        lines.append(f"\nNot compared: {only_a} pairs only in A, {only_b} only in B.")
    return "\n".join(lines)


def _cmd_compare(args: argparse.Namespace) -> int:
    from seqae.files import atomic_write_json

    try:
        rows_a, rows_b = load_eval_pairs(args.a), load_eval_pairs(args.b)
        if args.references is not None:
            # a recipe's eval_pairs.json holds one evaluation per eval.n_references count
            rows_a, rows_b = (
                [r for r in rows if len(r["references"]) == args.references]
                for rows in (rows_a, rows_b)
            )
        result = compare_evaluations(
            rows_a,
            rows_b,
            system=args.system,
            n_boot=args.n_boot,
            seed=args.seed,
            same_references=not args.any_references,
        )
    except (SpeechDataError, ValueError) as e:
        print(f"seqae vc-compare: {e}", file=sys.stderr)
        return 2
    print(format_comparison(result, str(args.a), str(args.b)))
    if args.out:
        atomic_write_json(Path(args.out), {"a": str(args.a), "b": str(args.b), **result})
    return 0


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae vc-compare`` (the registry's ``cli`` component)."""
    p = subparsers.add_parser(
        "vc-compare",
        help="compare two voice-conversion evaluations pair for pair (paired bootstrap WER)",
    )
    p.add_argument("a", help="baseline: eval.json, eval_pairs.json or a folder holding one")
    p.add_argument("b", help="candidate, evaluated on the same pairs (same --pairs and --seed)")
    p.add_argument("--system", default="converted", choices=SYSTEMS)
    p.add_argument(
        "--any-references",
        action="store_true",
        help="match pairs by target, source and sentence only, to compare one conversion made "
        "with other references (e.g. vc-eval --references 1 against --references 2, same seed)",
    )
    p.add_argument(
        "--references",
        type=int,
        default=None,
        metavar="N",
        help="compare only conversions made with N references (a recipe evaluated with "
        "eval.n_references [1, 2] holds both)",
    )
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", default=None, help="also write the comparison here as JSON")
    p.set_defaults(func=_cmd_compare)
    return p


def _check_eval_args(
    args: argparse.Namespace, prog: str, model: torch.nn.Module
) -> SpeechCorpus | None:
    """The corpus ``seqae vc-eval`` evaluates ``model`` on, once ``--corpus``, the target voices
    and ``--out`` are known to be usable (None after printing, in one line, why one is not)."""
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"{prog}: --out {args.out} is a file; give a folder for the results", file=sys.stderr)
        return None
    try:
        corpus = SpeechCorpus(args.corpus)
    except SpeechDataError as exc:
        print(
            f"{prog}: --corpus {args.corpus}: {exc}; expected a corpus folder written by "
            "`seqae data speech --out`",
            file=sys.stderr,
        )
        return None
    if args.pair_voices is None:
        args.pair_voices = corpus.speakers_with_role("unseen")
    heard = set(heard_voices(model, corpus))
    trained = [v for v in args.pair_voices if v in heard]
    if trained:
        print(
            f"{prog}: --pair-voices: {', '.join(trained)} are training voices of the model; give "
            "voices it never heard (the corpus's unseen role, or voices left out of its training)",
            file=sys.stderr,
        )
        return None
    for flag, voices in (
        ("--seen", args.seen),
        ("--unseen", args.unseen),
        ("--pair-voices", args.pair_voices),
    ):
        unknown = [v for v in voices if v not in corpus.speakers]
        if unknown:
            print(
                f"{prog}: {flag}: voice(s) {', '.join(unknown)} not in the corpus {args.corpus}; "
                f"it has {', '.join(corpus.speakers) or 'no voices'}",
                file=sys.stderr,
            )
            return None
    if not args.seen and not args.unseen:
        print(f"{prog}: give at least one target voice (--seen or --unseen)", file=sys.stderr)
        return None
    return corpus


def _cmd_eval(args: argparse.Namespace) -> int:
    from seqae.audio.convert import converter_from_args
    from seqae.files import atomic_write_json, atomic_write_text

    prog = "seqae vc-eval"
    try:
        counts = check_reference_counts(args.references)
    except ValueError:
        print(
            f"{prog}: --references must be distinct counts >= 1, got {args.references}",
            file=sys.stderr,
        )
        return 2
    converter = converter_from_args(args, prog)
    if converter is None:
        return 2
    corpus = _check_eval_args(args, prog, converter.model)
    if corpus is None:
        return 2
    try:
        results = evaluate_reference_counts(
            converter,
            corpus,
            counts=counts,
            seen_targets=args.seen,
            unseen_targets=args.unseen,
            pairs_per_target=args.pairs,
            seed=args.seed,
            samples_dir=Path(args.out) / "samples" if args.out else None,
            probe=not args.no_probe,
            cache_dir=Path(args.corpus) / "cache",
            progress=True,
            source_kinds=args.source_kinds,
            exclude_related=not args.include_related_sources,
            pair_voices=args.pair_voices,
        )
    except (SpeechDataError, AudioFileError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    report = report_reference_counts(results, seed=args.seed)
    table = "\n\n".join(report["tables"])
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"summary": results[counts[0]]["summary"]}
        if len(counts) > 1:
            data["by_references"] = report["by_count"]
            data["pairs"] = report["rows"]
        else:
            data["pairs"] = results[counts[0]]["pairs"]
        atomic_write_json(out / "eval.json", data)
        atomic_write_text(out / "eval_table.md", table + "\n")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae vc-eval`` (the registry's ``cli`` component)."""
    from seqae.audio.convert import add_match_stats_argument, add_vocoder_argument
    from seqae.cli import int_at_least

    p = subparsers.add_parser(
        "vc-eval",
        help="score one-shot voice conversion: speaker similarity, WER, MCD, speaker probe",
    )
    p.add_argument("--model", required=True, help="trained model directory (run_dir/model)")
    p.add_argument("--corpus", required=True, help="corpus directory (seqae data speech --out)")
    p.add_argument("--seen", nargs="*", default=["flite_kal16", "flite_slt"])
    p.add_argument("--unseen", nargs="*", default=["flite_awb", "flite_rms"])
    p.add_argument(
        "--pair-voices",
        nargs="*",
        default=None,
        help="voices the model never heard (the corpus's unseen role, or voices its training "
        "left out), converted to each other and grouped by same or other sex (default: every "
        "voice of the corpus's unseen role; none: give the flag alone)",
    )
    p.add_argument(
        "--pairs", type=int_at_least(1), default=20, help="conversions per target voice (>= 1)"
    )
    p.add_argument(
        "--references",
        type=int,
        nargs="+",
        default=[1],
        help="reference utterances per conversion; several counts (e.g. 1 2) are evaluated on "
        "the same conversions and compared",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-probe", action="store_true", help="skip the speaker probe")
    p.add_argument(
        "--source-kinds",
        nargs="*",
        default=None,
        help="draw sources only from these corpus sources (e.g. flite festival perturbed)",
    )
    p.add_argument(
        "--include-related-sources",
        action="store_true",
        help="also convert from voices made from the target's own recordings (its variants, and "
        "another engine's voice of the same person; off by default)",
    )
    add_match_stats_argument(p)
    add_vocoder_argument(p)
    p.add_argument("--out", default=None, help="write eval.json, eval_table.md and samples here")
    p.set_defaults(func=_cmd_eval)
    return p
