"""Latency of the web demo's conversion of a 5-second clip, against its 1-second budget.

Run by hand (never by the tests):

    python benchmarks/bench_demo_latency.py --model runs/vc/model   # a trained model
    python benchmarks/bench_demo_latency.py                         # random default-size AdaINVC
    python benchmarks/bench_demo_latency.py --threads 2             # seqae demo --threads 2

Times what the page runs when a person presses Convert (:meth:`seqae.demo.vc.VoiceTab.convert`:
read and check the uploaded source and reference files, convert with Griffin-Lim, write the
result's ``.wav``, draw the three mel spectrograms), on a ``--seconds`` (5) s source and a 2 s
reference, synthesized with espeak-ng from the package's sentences (a harmonic test signal
without espeak-ng), with ``seqae demo``'s torch thread count (``--threads``, default 1). The
budget is 1 s on 2 CPU cores: ``RATIO demo/budget`` <= 1 passes. The
peer, measured in the same run on the same audio and the same converter, is a direct
:meth:`seqae.audio.convert.VoiceConverter.convert_wav` call on the waveforms already in memory:
``RATIO demo/direct`` is what the page adds around the conversion. The model and converter are
loaded and warmed up first (the demo does that once, at start-up), then each side is timed
``--repeats`` times, alternately; printed: the median, fastest and slowest wall-clock times and
the median CPU time of the process (all its threads: the work a conversion needs, which other
jobs on the machine do not change), with the load average before and after (other jobs slow
the wall clock down on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from seqae.audio.features import FeatureConfig, log_mel
from seqae.audio.io import load_audio, write_audio
from seqae.demo.cache import ModelCache
from seqae.demo.command import DEFAULT_THREADS
from seqae.demo.discovery import find_models
from seqae.demo.vc import GRIFFIN_LIM, VoiceTab

SENTENCES = Path(__file__).resolve().parent.parent / "seqae" / "audio" / "sentences.txt"


def speech(seconds: float, voice: str, first_sentence: int, folder: Path) -> Path:
    """A ``seconds``-long 16 kHz recording: espeak-ng reading sentences (cut to length), or a
    gliding harmonic tone when espeak-ng is missing."""
    rate = FeatureConfig().sample_rate
    out = folder / f"{voice.replace('+', '_')}_{seconds:g}s.wav"
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        t = torch.arange(int(seconds * rate)) / rate
        phase = 2 * torch.pi * torch.cumsum(120 + 30 * torch.sin(2 * torch.pi * 0.5 * t), 0) / rate
        wav = sum(torch.sin(k * phase) / k for k in range(1, 9)) * (0.6 + 0.4 * torch.sin(8 * t))
        write_audio(out, 0.3 * wav / wav.abs().max(), rate)
        return out
    lines = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    text = " ".join(lines[first_sentence : first_sentence + 4])  # more than enough words
    raw = folder / "raw.wav"
    subprocess.run([espeak, "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
    write_audio(out, load_audio(raw, sample_rate=rate)[: int(seconds * rate)], rate)
    return out


def runs_folder(model: str | None, folder: Path, audio: list[Path]) -> tuple[Path, str]:
    """A runs folder holding the model to time (a link to ``model``, or a random default-size
    AdaINVC whose feature statistics are fitted on ``audio``), and what it holds."""
    runs = folder / "runs"
    (runs / "bench").mkdir(parents=True)
    if model is not None:
        (runs / "bench" / "model").symlink_to(Path(model).resolve(), target_is_directory=True)
        return runs, f"model {model}"
    from seqae.audio.models import AdaINVC

    torch.manual_seed(0)
    vc = AdaINVC()
    vc.normalizer.fit(log_mel(load_audio(p)) for p in audio)
    vc.save_pretrained(runs / "bench" / "model")
    return runs, "RANDOMLY INITIALISED default-size AdaINVC (no --model given)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="saved VC model folder (default: random)")
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch CPU threads (default {DEFAULT_THREADS}, as seqae demo)",
    )
    p.add_argument("--seconds", type=float, default=5.0, help="length of the source clip")
    p.add_argument("--repeats", type=int, default=10, help="timed runs of each side")
    p.add_argument("--budget", type=float, default=1.0, help="seconds the page may take")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = speech(args.seconds, "en+m3", 0, folder)
        reference = speech(2.0, "en+f2", 20, folder)
        runs, what = runs_folder(args.model, folder, [source, reference])
        found = find_models(runs)
        tab = VoiceTab(found["vc"], found["vocoder"], ModelCache())
        converter = tab.converter("bench", GRIFFIN_LIM)  # loaded and warmed up, as at start-up
        rate = converter.feature_config.sample_rate
        src, ref = load_audio(source, sample_rate=rate), load_audio(reference, sample_rate=rate)
        params = sum(x.numel() for x in converter.model.parameters()) / 1e6
        print(
            f"torch {torch.__version__} | {torch.get_num_threads()} threads | {what}, "
            f"{params:.2f} M parameters | Griffin-Lim {converter.vocoder.griffin_lim.n_iter} "
            f"iterations | source {src.numel() / rate:.2f} s, reference {ref.numel() / rate:.2f} s"
        )

        results: list[str] = []

        def demo() -> None:
            results.append(
                tab.convert("bench", GRIFFIN_LIM, str(source), None, str(reference), None)[0]
            )

        def direct() -> None:
            converter.convert_wav(src, [ref])

        demo()
        direct()  # one more untimed pass each
        times: dict[str, list[float]] = {"demo": [], "direct": []}
        cpu: dict[str, list[float]] = {"demo": [], "direct": []}
        for _ in range(args.repeats):
            for name, run in (("demo", demo), ("direct", direct)):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        result_seconds = sf.info(results[-1]).duration
    load_after = os.getloadavg()
    median = {k: statistics.median(v) for k, v in times.items()}
    for name, label in (("demo", "demo (page's Convert)"), ("direct", "direct convert_wav")):
        print(
            f"{label:<24} median {median[name]:.3f} s   fastest {min(times[name]):.3f} s   "
            f"slowest {max(times[name]):.3f} s   CPU {statistics.median(cpu[name]):.3f} s"
        )
    print(f"the page's result: {result_seconds:.2f} s of audio (the source: {args.seconds:g} s)")
    ratio = median["demo"] / args.budget
    verdict = "PASS" if ratio <= 1.0 else "MISS"
    print(f"RATIO demo/budget {ratio:.2f} (budget {args.budget:g} s: {verdict})")
    print(f"RATIO demo/direct {median['demo'] / median['direct']:.2f}")
    print(
        "load average (1 min) before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
