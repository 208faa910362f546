"""The limits the demo holds its users' input to, stated in the page beside each input.

Uploads are capped by the server (``max_file_size`` of ``launch``) before any seqae code sees
them; the other limits are checked by the tabs and refused with one line in the page.
"""

from __future__ import annotations

__all__ = [
    "MAX_ARTICLE_CHARS",
    "MAX_AUDIO_SECONDS",
    "MAX_SENTENCE_WORDS",
    "MAX_UPLOAD_MB",
    "audio_limits_text",
]

#: Largest file accepted by an upload, in megabytes (the server refuses larger ones).
MAX_UPLOAD_MB = 20
#: Longest recording or audio file accepted, in seconds.
MAX_AUDIO_SECONDS = 30.0
#: Longest article the text tab summarizes, in characters.
MAX_ARTICLE_CHARS = 10_000
#: Longest sentence the tree tab parses, in words (parsing costs grow as the cube of it).
MAX_SENTENCE_WORDS = 60


def audio_limits_text(min_seconds: float) -> str:
    """The audio limits as one sentence for the page.

    Args:
        min_seconds: The shortest audio accepted (seqae.audio.io.MIN_SECONDS).
    """
    return (
        f"Audio: any format libsndfile reads (WAV, FLAC, OGG, MP3, ...), at most "
        f"{MAX_UPLOAD_MB} MB and {MAX_AUDIO_SECONDS:g} s per file, at least {min_seconds:g} s of "
        "sound (not silence)."
    )
