"""The voice-conversion tab: speech in one voice, out in another (``seqae run vc``).

The source is recorded with the microphone or uploaded. The target voice is one of the voices
of the corpus the model was trained on (its run's ``data.corpus``; choosing one plays a sample
of it), or one or two recordings of any voice, uploaded or recorded (they take precedence).
The model and the vocoder (Griffin-Lim, or a model of ``seqae run vocoder``) are chosen from
those found. The result can be played and downloaded, and the mel spectrograms of the source,
the (first) reference and the result are shown side by side on one colour scale.

Conversion is :class:`seqae.audio.convert.VoiceConverter`'s, as ``seqae convert`` does it;
files are read with :func:`seqae.audio.io.load_audio`, whose checks (not audio, empty, damaged,
too short, silent) reach the page as one line, and the result is written with
:func:`seqae.audio.io.write_audio` (never clipped).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from seqae.audio.convert import VoiceConverter
from seqae.audio.dataset import SpeechCorpus
from seqae.audio.features import log_mel
from seqae.audio.io import MIN_SECONDS, AudioFileError, load_audio, write_audio
from seqae.demo.cache import ModelCache
from seqae.demo.discovery import FoundModel
from seqae.demo.errors import DemoInputError, input_error_types, shown_in_page
from seqae.demo.images import IMAGE_BUTTONS, mel_image, mel_range
from seqae.demo.limits import MAX_AUDIO_SECONDS, audio_limits_text

__all__ = ["GRIFFIN_LIM", "REFERENCES_PER_VOICE", "VoiceTab", "read_speech"]

#: The vocoder choice that needs no trained model.
GRIFFIN_LIM = "Griffin-Lim (no training)"
#: Utterances of a corpus voice used as its references.
REFERENCES_PER_VOICE = 2


def read_speech(path: str | os.PathLike[str], what: str, sample_rate: int) -> Tensor:
    """A speech recording as a mono waveform at ``sample_rate``, refused in one line when it
    cannot be used (``load_audio``'s checks, and at most :data:`MAX_AUDIO_SECONDS`).

    Args:
        path: The file (an upload or a recording).
        what: How the message names it ("the source", "reference 1").
        sample_rate: The model's rate.

    Raises:
        DemoInputError: not audio, empty, damaged, too short, silent or too long; the message
            names the file by its name (not the server's temporary path).
    """
    path = Path(path)
    try:  # refuse a long file by its header, before decoding minutes of audio
        declared = float(sf.info(str(path)).duration)
    except (RuntimeError, ValueError, TypeError, OSError):
        declared = 0.0  # not a file libsndfile reads: load_audio says what is wrong
    try:
        wav = load_audio(path, sample_rate=sample_rate) if declared <= MAX_AUDIO_SECONDS else None
    except AudioFileError as exc:
        reason = str(exc).removeprefix(f"{path}: ").replace(str(path), path.name)
        raise DemoInputError(f"{what} ({path.name}): {reason}") from None
    seconds = declared if wav is None else wav.numel() / sample_rate
    if wav is None or seconds > MAX_AUDIO_SECONDS:
        raise DemoInputError(
            f"{what} ({path.name}) is {seconds:.1f} s long; at most {MAX_AUDIO_SECONDS:g} s is "
            "accepted: use a shorter recording"
        )
    return wav


def _warmed_up(converter: VoiceConverter) -> VoiceConverter:
    """The converter after one conversion of a second of a synthetic vowel: the first pass
    through torch's kernels and the vocoder's transforms is several times slower than the next,
    and a person's first conversion should not pay for it."""
    rate = converter.feature_config.sample_rate
    t = torch.arange(rate) / rate
    vowel = sum(torch.sin(2 * torch.pi * 140 * k * t) / k for k in range(1, 8)) * 0.1
    converter.convert_wav(vowel, [vowel])
    return converter


class VoiceTab:
    """The voice-conversion tab's handlers and layout.

    Args:
        models: The found voice-conversion models (kind ``vc``).
        vocoders: The found trained vocoders (kind ``vocoder``).
        cache: The app's model cache.
    """

    def __init__(
        self, models: Sequence[FoundModel], vocoders: Sequence[FoundModel], cache: ModelCache
    ) -> None:
        self.models = {m.name: m for m in models}
        self.vocoders = {v.name: v for v in vocoders}
        self.cache = cache
        self._outputs = tempfile.TemporaryDirectory(prefix="seqae-demo-vc-")

    # -- models ---------------------------------------------------------------------------------
    def _found(self, table: dict[str, FoundModel], name: str, what: str) -> FoundModel:
        if name not in table:
            raise DemoInputError(f"no {what} {name!r} here; choose one of {', '.join(table)}")
        return table[name]

    def converter(self, model_name: str, vocoder_name: str) -> VoiceConverter:
        """The converter of a model and a vocoder, built once (the model and the vocoder are
        loaded once too, and shared by the converters that use them).

        Raises:
            DemoInputError: an unknown name.
            FeatureMismatchError: the vocoder was trained for other features than the model.
        """
        model_path = self._found(self.models, model_name, "model").path
        vocoder_path = (
            None
            if vocoder_name == GRIFFIN_LIM
            else self._found(self.vocoders, vocoder_name, "vocoder").path
        )

        def build() -> VoiceConverter:
            model = self.cache.get(
                ("vc_model", model_path), lambda: VoiceConverter.load_model(model_path)
            )
            if vocoder_path is None:
                return _warmed_up(VoiceConverter(model))
            from seqae.audio.neural_vocoder import load_vocoder

            vocoder = self.cache.get(("vocoder", vocoder_path), lambda: load_vocoder(vocoder_path))
            return _warmed_up(VoiceConverter(model, vocoder=vocoder))

        return self.cache.get(("converter", model_path, vocoder_path), build)

    def preload(self, model_name: str) -> None:
        """Load and warm up the model's Griffin-Lim converter (in the background at start-up;
        a model that cannot be loaded is reported when a conversion asks for it)."""
        with contextlib.suppress(*input_error_types()):
            self.converter(model_name, GRIFFIN_LIM)

    def corpus(self, model_name: str) -> SpeechCorpus | None:
        """The corpus of model ``model_name``'s run (scanned once), or None."""
        root = self._found(self.models, model_name, "model").run_path("data.corpus")
        if root is None:
            return None
        return self.cache.get(("corpus", root.resolve()), lambda: SpeechCorpus(root))

    def voices(self, model_name: str) -> list[tuple[str, str]]:
        """``(label, voice)`` of every voice of the model's corpus; unseen voices say so."""
        corpus = self.corpus(model_name)
        if corpus is None:
            return []
        return [(f"{s} (unseen)" if corpus.role(s) == "unseen" else s, s) for s in corpus.speakers]

    def voice_files(self, model_name: str, voice: str) -> list[Path]:
        """:data:`REFERENCES_PER_VOICE` utterances of a corpus voice (its test sentences when
        the corpus has a split: sentences the model did not train on)."""
        corpus = self.corpus(model_name)
        if corpus is None or voice not in corpus.speakers:
            raise DemoInputError(f"the voice {voice!r} is not in this model's corpus")
        utterances = corpus.select(speakers=[voice])
        test = corpus.sentence_split("test") or set()
        held_out = [u for u in utterances if u.sentence_id in test]
        return [u.path for u in (held_out or utterances)[:REFERENCES_PER_VOICE]]

    # -- handlers -------------------------------------------------------------------------------
    def sample(self, model_name: str, voice: str | None) -> tuple[int, np.ndarray] | None:
        """A sample of a corpus voice, as ``(rate, samples)`` (None when no voice is chosen)."""
        if not voice:
            return None
        rate = self.converter(model_name, GRIFFIN_LIM).feature_config.sample_rate
        path = self.voice_files(model_name, voice)[0]
        return rate, read_speech(path, f"the sample of {voice}", rate).numpy()

    def convert(
        self,
        model_name: str,
        vocoder_name: str,
        source: str | None,
        voice: str | None,
        reference_1: str | None,
        reference_2: str | None,
    ) -> list[Any]:
        """Convert the source to the target voice.

        The references are the uploaded or recorded ones when there are any, else
        :data:`REFERENCES_PER_VOICE` utterances of the chosen corpus voice.

        Returns:
            ``[result file, source mel, reference mel, result mel]``: the converted ``.wav``
            (as long as the source) and three colour images on one scale.

        Raises:
            DemoInputError: no source, no target, or audio that cannot be used.
        """
        if not source:
            raise DemoInputError("record or upload the source speech first")
        converter = self.converter(model_name, vocoder_name)
        rate = converter.feature_config.sample_rate
        wav = read_speech(source, "the source", rate)
        uploads = [r for r in (reference_1, reference_2) if r]
        if uploads:
            refs = [read_speech(r, f"reference {i + 1}", rate) for i, r in enumerate(uploads)]
            target = "reference"
        elif voice:
            files = self.voice_files(model_name, voice)
            refs = [read_speech(f, f"a recording of {voice}", rate) for f in files]
            target = voice
        else:
            raise DemoInputError(
                "choose a target voice, or upload or record one or two references of it"
            )
        result = converter.convert_wav(wav, refs)
        out = Path(self._outputs.name) / uuid.uuid4().hex / f"{Path(source).stem}_as_{target}.wav"
        write_audio(out, result, rate)
        with torch.no_grad():
            mels = [log_mel(x, converter.feature_config) for x in (wav, refs[0], result)]
        low, high = mel_range(*mels)
        return [str(out), *(mel_image(m, vmin=low, vmax=high) for m in mels)]

    # -- layout ---------------------------------------------------------------------------------
    def build(self) -> None:
        """Build the tab's content inside the current Blocks context."""
        names = sorted(self.models)
        default = names[0]
        gr.Markdown(
            "Speech in one voice, out in another. Record or upload the source, choose the "
            "target voice from the corpus the model trained on (choosing one plays a sample) or "
            "give one or two recordings of any voice (they take precedence), and convert. "
            + audio_limits_text(MIN_SECONDS)
        )
        with gr.Row():
            model = gr.Dropdown(names, value=default, label="model")
            vocoder = gr.Dropdown(
                [GRIFFIN_LIM, *sorted(self.vocoders)], value=GRIFFIN_LIM, label="vocoder"
            )
        with gr.Row():
            source = gr.Audio(
                sources=["upload", "microphone"],
                type="filepath",
                label="source speech",
                buttons=["download"],
                elem_id="vc-source",
            )
            with gr.Column():
                voice = gr.Radio(
                    self.voices(default),
                    value=None,
                    label="target voice (the corpus's voices)",
                    elem_id="vc-voice",
                )
                sample = gr.Audio(
                    label="sample of the voice",
                    interactive=False,
                    autoplay=True,
                    buttons=[],
                    elem_id="vc-sample",
                )
        with gr.Row():
            references = [
                gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label=f"or reference {i}: a recording of any voice",
                    buttons=["download"],
                    elem_id=f"vc-reference-{i}",
                )
                for i in (1, 2)
            ]
        run = gr.Button("Convert", variant="primary", elem_id="vc-convert")
        result = gr.Audio(
            type="filepath",
            label="result",
            interactive=False,
            buttons=["download"],
            elem_id="vc-result",
        )
        with gr.Row():
            mels = [
                gr.Image(
                    label=f"mel spectrogram: {what}",
                    interactive=False,
                    buttons=IMAGE_BUTTONS,
                    elem_id=f"vc-mel-{what}",
                )
                for what in ("source", "reference", "result")
            ]
        # load and warm up the first converter now, so that the first conversion is quick
        threading.Thread(target=self.preload, args=(default,), daemon=True).start()
        voice.change(shown_in_page(self.sample), [model, voice], sample)
        model.change(
            shown_in_page(lambda name: gr.update(choices=self.voices(name), value=None)),
            model,
            voice,
        )
        run.click(
            shown_in_page(self.convert),
            [model, vocoder, source, voice, *references],
            [result, *mels],
            concurrency_limit=1,
        )
