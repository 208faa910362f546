"""Real-time factor of voice conversion, vocoder included, against the vocoder-only floor.

Run by hand (never by the tests):

    python benchmarks/bench_vc_rtf.py --model runs/vc/model     # a trained model, 2 CPU threads
    python benchmarks/bench_vc_rtf.py                           # random default-size AdaINVC
    python benchmarks/bench_vc_rtf.py --device cuda             # when a GPU is present
    python benchmarks/bench_vc_rtf.py --model runs/vc/model --vocoder runs/vocoder/model

Each of ``--utterances`` utterances (``--min-seconds``..``--max-seconds`` long, synthesized with
espeak-ng from the package's sentence list, several voices; a harmonic test signal when espeak-ng
is missing) is converted to the voice of another one, exactly as ``seqae convert`` does it
(:class:`seqae.audio.convert.VoiceConverter`: in-memory waveform -> resampling/level checks ->
log-mel -> normalisation -> reference speaker embedding -> chunked model pass -> inverse
normalisation -> Griffin-Lim), timed stage by stage. Reading and writing files is left out.

Real-time factor (RTF) = processing seconds / seconds of audio; the target is RTF <= 0.25 on
2 CPU cores. The peer, measured in the same run on the same utterances, is the vocoder-only
floor: the source's own log-mel resynthesised by the same Griffin-Lim (``RTF_vocoder``); the
printed ratio ``RTF_total / RTF_vocoder`` is what the features and the model add on top of it.
With ``--vocoder`` (a trained :class:`~seqae.audio.ISTFTVocoder`) that vocoder replaces
Griffin-Lim, and Griffin-Lim on the same log-mels is timed too, as a second peer
(``RATIO trained/Griffin-Lim``).
Each stage is timed ``--repeats`` times per utterance (median), after one untimed warm-up.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

from seqae.audio.convert import VoiceConverter
from seqae.audio.features import FeatureConfig, log_mel
from seqae.audio.io import load_audio
from seqae.audio.neural_vocoder import load_vocoder
from seqae.audio.vocoder import GriffinLimVocoder

ESPEAK_VOICES = ["en+m3", "en+f2", "en-us+m1", "en+f4", "en-gb+m5", "en-us+f3"]
SENTENCES = Path(__file__).resolve().parent.parent / "seqae" / "audio" / "sentences.txt"


def synthesize(n: int, lo: float, hi: float, rate: int, seed: int) -> tuple[list[Tensor], str]:
    """``n`` utterances of ``lo``..``hi`` seconds at ``rate`` Hz, and how they were made."""
    g = torch.Generator().manual_seed(seed)
    espeak = shutil.which("espeak-ng")
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    wavs: list[Tensor] = []
    if espeak is None:
        for _ in range(n):
            wavs.append(harmonic(lo + (hi - lo) * torch.rand((), generator=g).item(), rate, g))
        return wavs, "harmonic test signals (espeak-ng not found)"
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            target = lo + (hi - lo) * torch.rand((), generator=g).item()
            text, k = "", i * 7
            while True:  # add sentences until the (estimated) length is reached
                text = f"{text} {sentences[k % len(sentences)]}".strip()
                k += 1
                if len(text.split()) / 2.6 >= target:  # espeak at 160 wpm: ~2.7 words/s
                    break
            out = Path(tmp) / f"{i}.wav"
            voice = ESPEAK_VOICES[i % len(ESPEAK_VOICES)]
            subprocess.run(
                [espeak, "-v", voice, "-s", "160", "-w", str(out), text],
                check=True,
                capture_output=True,
            )
            wav = load_audio(out, sample_rate=rate)
            wavs.append(wav[: int(hi * rate)])
    return wavs, f"espeak-ng voices {', '.join(ESPEAK_VOICES)}"


def harmonic(seconds: float, rate: int, g: torch.Generator) -> Tensor:
    """A voiced-speech-like test signal: gliding f0, 10 harmonics, syllable-rate envelope."""
    t = torch.arange(int(seconds * rate)) / rate
    f0 = 110 + 40 * torch.rand((), generator=g) + 20 * torch.sin(2 * torch.pi * 0.7 * t)
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / rate
    wav = sum(torch.sin(k * phase) / k for k in range(1, 11))
    env = 0.55 + 0.45 * torch.sin(2 * torch.pi * 4.0 * t)
    return (0.3 * wav * env / wav.abs().max()).float()


def build_model(args: argparse.Namespace, wavs: list[Tensor]) -> tuple[torch.nn.Module, str]:
    if args.model:
        from seqae.audio.models import load_vc_model

        model = load_vc_model(args.model)
        return model, f"model {args.model} ({getattr(model, 'model_type', '?')})"
    from seqae.audio.models import AdaINVC

    torch.manual_seed(args.seed)
    model = AdaINVC()
    # Realistic normalised values for the vocoder: statistics of the benchmark's own audio.
    model.normalizer.fit(log_mel(w, model.feature_config) for w in wavs)
    return model, "RANDOMLY INITIALISED default-size AdaINVC (no --model given)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int):  # noqa: ANN001, ANN201
    """(result of the last call, median seconds over ``repeats`` calls)."""
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="saved VC model directory (default: random)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--utterances", type=int, default=8)
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--references", type=int, default=1, help="reference utterances per target")
    p.add_argument("--griffin-lim-iters", type=int, default=32)
    p.add_argument("--vocoder", default=None, help="trained vocoder folder (default Griffin-Lim)")
    p.add_argument("--chunk-seconds", type=float, default=8.0)
    p.add_argument("--overlap-seconds", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3, help="timings per utterance (median)")
    p.add_argument("--target-rtf", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    rate = FeatureConfig().sample_rate
    n_total = args.utterances + args.references
    wavs, made = synthesize(n_total, args.min_seconds, args.max_seconds, rate, args.seed)
    sources = wavs[: args.utterances]
    model, what = build_model(args, wavs)
    rate = model.feature_config.sample_rate
    params = sum(p.numel() for p in model.parameters())
    griffin_lim = GriffinLimVocoder(model.feature_config, n_iter=args.griffin_lim_iters)
    # VoiceConverter checks that a trained vocoder has the model's feature settings
    vocoder = griffin_lim if args.vocoder is None else load_vocoder(args.vocoder)
    vc = VoiceConverter(
        model,
        vocoder=vocoder,
        device=device,
        chunk_seconds=args.chunk_seconds,
        overlap_seconds=args.overlap_seconds,
    )
    print(
        f"torch {torch.__version__} | device {device}, {torch.get_num_threads()} threads | "
        f"{what}, {params / 1e6:.2f} M parameters"
    )
    print(
        f"{len(sources)} utterances ({made}), {sum(w.numel() for w in sources) / rate:.1f} s in "
        f"all, {args.references} reference(s) each | Griffin-Lim {args.griffin_lim_iters} "
        f"iterations | chunks {args.chunk_seconds} s, overlap {args.overlap_seconds} s | median "
        f"of {args.repeats} per stage"
    )

    stages = ["features", "speaker", "model", "vocoder"]
    totals = dict.fromkeys([*stages, "peer", "griffin_lim"], 0.0)
    audio_seconds = 0.0
    print(f"\n{'utt':>3} {'seconds':>7}  " + "  ".join(f"{s:>8}" for s in stages) + "   RTF")
    for i, src in enumerate(sources):
        refs = [wavs[args.utterances + (i + j) % args.references] for j in range(args.references)]
        refs = [r for r in refs if r is not src] or [wavs[(i + 1) % len(wavs)]]

        def features(src: Tensor = src, refs: list[Tensor] = refs) -> tuple[Tensor, list[Tensor]]:
            return vc.features(src), vc.reference_features(refs)

        with torch.inference_mode():
            own_mel = vc.extractor(src.to(device))  # the source's own log-mel, not timed

        def vocode_own(m: Tensor = own_mel, v=vocoder) -> Tensor:  # the peer: vocoder only
            with torch.inference_mode():
                return v(m)

        if i == 0:  # warm-up: allocator, kernels, transform caches
            (mel, ref_mels) = features()
            vc.vocode(vc.convert_mel(mel, ref_mels))
            vocode_own()
        (mel, ref_mels), t_feat = timed(features, device, args.repeats)
        (speaker, stats), t_spk = timed(
            lambda r=ref_mels: (vc.speaker_embedding(r), vc.reference_statistics(r)),
            device,
            args.repeats,
        )
        out, t_model = timed(
            lambda m=mel, s=speaker, st=stats: vc.convert_mel(m, speaker=s, statistics=st),
            device,
            args.repeats,
        )
        _, t_voc = timed(lambda o=out: vc.vocode(o), device, args.repeats)
        _, t_peer = timed(vocode_own, device, args.repeats)
        if args.vocoder is not None:
            if i == 0:
                vocode_own(v=griffin_lim)  # warm-up
            _, t_gl = timed(lambda m=own_mel: vocode_own(m, griffin_lim), device, args.repeats)
            totals["griffin_lim"] += t_gl
        dur = src.numel() / rate
        audio_seconds += dur
        row = dict(zip(stages, (t_feat, t_spk, t_model, t_voc), strict=True))
        for k, v in [*row.items(), ("peer", t_peer)]:
            totals[k] += v
        rtf = sum(row.values()) / dur
        print(
            f"{i:>3} {dur:>7.2f}  " + "  ".join(f"{row[s]:>8.4f}" for s in stages) + f"  {rtf:.3f}"
        )

    total = sum(totals[s] for s in stages)
    rtf_total = total / audio_seconds
    rtf_voc = totals["peer"] / audio_seconds
    print(f"\nper stage over {audio_seconds:.1f} s of audio (seconds, RTF):")
    for s in stages:
        print(f"  {s:<9} {totals[s]:8.3f} s   RTF {totals[s] / audio_seconds:.4f}")
    print(f"  {'total':<9} {total:8.3f} s   RTF {rtf_total:.4f}")
    verdict = "PASS" if rtf_total <= args.target_rtf else "MISS"
    print(f"RTF total: {rtf_total:.3f}  (target <= {args.target_rtf})  {verdict}")
    print(
        f"peer (vocoder-only floor: the source's log-mel -> the same vocoder): RTF_vocoder "
        f"{rtf_voc:.4f}"
    )
    print(f"RATIO RTF_total/RTF_vocoder: {rtf_total / rtf_voc:.2f}")
    if args.vocoder is not None:
        rtf_gl = totals["griffin_lim"] / audio_seconds
        print(f"second peer: Griffin-Lim on the same log-mels, RTF {rtf_gl:.4f}")
        print(f"RATIO trained/Griffin-Lim vocoder: {rtf_voc / rtf_gl:.2f}")


if __name__ == "__main__":
    main()
