"""Evaluation metrics: reconstruction error, log-likelihood, codebook usage, clustering,
disentanglement, word error rate, ROUGE and Lead-N (``rouge``, through ``rouge-score`` from
the ``text`` extra, imported when first used), bootstrap intervals and Markdown result tables,
and speech (speaker similarity, ASR transcripts, mel-cepstral distortion).

All run without gradients and accept batches on any device; models are duck-typed (see each
module's docstring for what it calls).
"""

from seqae.metrics.bootstrap import (
    BootstrapInterval,
    MeanEstimate,
    bootstrap_ratio,
    mean_and_se,
    paired_bootstrap,
    paired_difference,
    standard_error,
)
from seqae.metrics.classification import accuracy, classifier_accuracy
from seqae.metrics.clustering import (
    ClusteringScores,
    clustering_accuracy,
    clustering_scores,
    match_clusters,
    purity,
)
from seqae.metrics.codebook import (
    CodebookUsage,
    code_histogram,
    codebook_perplexity,
    codebook_usage,
    perplexity_from_counts,
)
from seqae.metrics.disentanglement import (
    DCIResult,
    FactorVAEResult,
    MIGResult,
    dci,
    evaluate_disentanglement,
    factor_vae_score,
    mig,
)
from seqae.metrics.likelihood import (
    DEFAULT_NUM_SAMPLES,
    elbo,
    importance_sampled_nll,
    log_importance_weights,
)
from seqae.metrics.reconstruction import (
    ReconstructionError,
    evaluating,
    iter_batches,
    model_device,
    reconstruction_error,
)
from seqae.metrics.rouge import (
    CorpusRouge,
    RougeDifference,
    RougeScore,
    corpus_rouge,
    count_words,
    lead_baseline,
    lead_n,
    paired_rouge_difference,
    rouge_per_item,
    rouge_scores,
    rouge_table,
)
from seqae.metrics.speech import (
    SpeakerEmbedder,
    Transcriber,
    dtw_path,
    mel_cepstral_distortion,
    mel_cepstrum,
    speaker_probe,
    speaker_similarity_report,
)
from seqae.metrics.speech import cosine as speaker_cosine
from seqae.metrics.tables import format_estimate, format_number, markdown_table
from seqae.metrics.wer import (
    WERInterval,
    WordErrors,
    corpus_wer,
    corpus_wer_bootstrap,
    edit_operations,
    normalize_text,
    paired_wer_difference,
    word_error_rate,
    word_errors,
)

__all__ = [
    "BootstrapInterval",
    "MeanEstimate",
    "bootstrap_ratio",
    "edit_operations",
    "format_estimate",
    "format_number",
    "markdown_table",
    "mean_and_se",
    "paired_bootstrap",
    "paired_difference",
    "standard_error",
    "CorpusRouge",
    "RougeDifference",
    "RougeScore",
    "corpus_rouge",
    "count_words",
    "lead_baseline",
    "lead_n",
    "paired_rouge_difference",
    "rouge_per_item",
    "rouge_scores",
    "rouge_table",
    "SpeakerEmbedder",
    "Transcriber",
    "WERInterval",
    "WordErrors",
    "corpus_wer",
    "corpus_wer_bootstrap",
    "dtw_path",
    "mel_cepstral_distortion",
    "mel_cepstrum",
    "normalize_text",
    "paired_wer_difference",
    "speaker_cosine",
    "speaker_probe",
    "speaker_similarity_report",
    "word_error_rate",
    "word_errors",
    "DCIResult",
    "FactorVAEResult",
    "MIGResult",
    "dci",
    "evaluate_disentanglement",
    "factor_vae_score",
    "mig",
    "ClusteringScores",
    "clustering_accuracy",
    "clustering_scores",
    "match_clusters",
    "purity",
    "accuracy",
    "classifier_accuracy",
    "DEFAULT_NUM_SAMPLES",
    "CodebookUsage",
    "ReconstructionError",
    "code_histogram",
    "codebook_perplexity",
    "codebook_usage",
    "elbo",
    "evaluating",
    "importance_sampled_nll",
    "iter_batches",
    "log_importance_weights",
    "model_device",
    "perplexity_from_counts",
    "reconstruction_error",
]
