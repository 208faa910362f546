"""Training-step speed of the audio recipes' models: bf16 autocast against float32.

Run by hand (never by the tests):

    python benchmarks/bench_train_step.py                    # the vc recipe's model, 2 threads
    python benchmarks/bench_train_step.py --config vc_gpu    # the vc GPU config's model
    python benchmarks/bench_train_step.py --config vocoder   # the vocoder recipe's ISTFTVocoder
    python benchmarks/bench_train_step.py --model autovc     # another vc variant (vq_vc, autovc)
    python benchmarks/bench_train_step.py --device cuda      # when a GPU is present

One step is what the recipe does per batch, on random inputs of the config's shape (the data
pipeline is not timed):

- ``vc`` configs: content from a log-mel crop, speaker from a reference crop, decode, masked L1
  + weighted KL (AutoVC: + the content-code loss, a second encoder pass on the reconstruction),
  backward, gradient clipping, AdamW;
- ``vocoder`` configs: log-mel of a waveform crop, the vocoder's waveform, its multi-resolution
  STFT + log-mel loss in float32, backward, gradient clipping, AdamW.

The peer, measured in the same run on the same model and batches, is the float32 step; the two
are timed alternately, ``--repeats`` times ``--steps`` steps each after a warm-up, and the
median steps/s compared: ``RATIO bf16/fp32 steps/s``. ``train.precision: auto`` picks bf16
where this ratio is well above 1: on CUDA, and on CPUs that multiply bf16 in hardware
(AVX512-BF16, AMX). Elsewhere oneDNN emulates bf16 and the ratio falls below 1.

Also printed: the relative difference of the loss and of the gradient norm between the two
precisions on the same weights and batch, so the speed is not bought with a different step.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from seqae import registry
from seqae.audio.features import FeatureConfig, log_mel
from seqae.audio.neural_vocoder import ISTFTVocoder, VocoderLoss
from seqae.config import load_config
from seqae.training import autocast_context, cpu_has_native_bf16, resolve_precision

CONFIGS = Path(__file__).resolve().parent.parent / "recipes" / "configs"

# (batch, precision) -> loss
LossFn = Callable[[dict[str, torch.Tensor], str], torch.Tensor]


def vc_task(
    cfg: dict, device: torch.device, seed: int, name: str | None = None
) -> tuple[torch.nn.Module, list, LossFn]:
    """The vc recipe's model (``model.name``, or ``name``), random log-mel batches, its loss."""
    name = name or cfg["model"]["name"]
    model_cls = registry.get("vc_model", name)
    model = model_cls.from_config(dict(cfg["model"][name] or {})).to(device)
    b, t = cfg["train"]["batch_size"], cfg["data"]["segment_frames"]
    kl_weight, code_weight = cfg["train"]["kl_weight"], cfg["train"]["autovc_code_weight"]

    def batch(i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed + i)
        lengths = torch.full((b,), t)
        lengths[: b // 4] = t * 3 // 4  # some crops shorter than the segment, as in the corpus
        out = {
            "x": torch.randn(b, 80, t, generator=g),
            "lengths": lengths,
            "ref": torch.randn(b, 80, t, generator=g),
            "ref_lengths": torch.full((b,), t),
        }
        return {k: v.to(device) for k, v in out.items()}

    def loss_of(batch: dict[str, torch.Tensor], precision: str) -> torch.Tensor:
        x, lengths = batch["x"], batch["lengths"]
        with autocast_context(x.device, precision=precision):
            content = model.encode_content(x, lengths)
            speaker = model.encode_speaker(batch["ref"], batch["ref_lengths"])
            recon = model.decode(content.z, speaker, length=x.shape[-1])
        mask = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None])[:, None]
        rec = ((recon.float() - x).abs() * mask).sum() / (mask.sum() * x.shape[1])
        loss = rec + kl_weight * content.loss.float().mean()
        if name == "autovc" and code_weight > 0:  # the recipe's content-code loss
            with autocast_context(x.device, precision=precision):
                code = model.encode_content(recon, lengths).z
            loss = loss + code_weight * (code.float() - content.z.detach().float()).abs().mean()
        return loss

    return model, [batch(i) for i in range(4)], loss_of


def vocoder_task(
    cfg: dict, device: torch.device, seed: int
) -> tuple[torch.nn.Module, list, LossFn]:
    """The vocoder recipe's ISTFTVocoder, random waveform crops, and its training loss."""
    features = FeatureConfig.from_dict(cfg["features"])
    model = ISTFTVocoder.from_config({**cfg["model"], "feature_config": features.to_dict()})
    model.to(device)
    loss_fn = VocoderLoss(features, **cfg["loss"]).to(device)
    b = cfg["train"]["batch_size"]
    samples = cfg["data"]["segment_frames"] * features.hop_length

    def batch(i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed + i)
        return {"wav": (0.1 * torch.randn(b, samples, generator=g)).to(device)}

    def loss_of(batch: dict[str, torch.Tensor], precision: str) -> torch.Tensor:
        wav = batch["wav"]
        mel = log_mel(wav, features)
        with autocast_context(wav.device, precision=precision):
            audio = model(mel)
        return loss_fn(audio.float(), wav, mel)["loss"]

    return model, [batch(i) for i in range(4)], loss_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="vc", help="a vc or vocoder recipe config name")
    p.add_argument(
        "--model", default=None, help="vc configs: the variant (adain_vc, vq_vc, autovc)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    cfg = load_config(CONFIGS / f"{args.config}.yaml")
    is_vocoder = "loss" in cfg  # the vocoder recipe's configs have a loss section, vc's do not
    if is_vocoder:
        if args.model is not None:
            p.error("--model chooses a vc variant; the vocoder configs have one model")
        model, batches, loss_of = vocoder_task(cfg, device, args.seed)
    else:
        known = registry.names("vc_model")
        if args.model is not None and args.model not in known:
            p.error(f"--model must be one of {', '.join(known)}, got {args.model!r}")
        model, batches, loss_of = vc_task(cfg, device, args.seed, args.model)
    t = cfg["train"]
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=t["lr"],
        betas=tuple(t.get("betas", (0.9, 0.999))),
        weight_decay=t["weight_decay"],
    )

    # the same weights and batch in both precisions: loss and gradient agreement
    grads = {}
    for precision in ("fp32", "bf16"):
        model.zero_grad(set_to_none=True)
        loss = loss_of(batches[0], precision)
        loss.backward()
        norm = torch.norm(torch.stack([q.grad.norm() for q in model.parameters()]))
        grads[precision] = (loss.item(), norm.item())
    model.zero_grad(set_to_none=True)

    def run(precision: str, n: int, offset: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(n):
            loss = loss_of(batches[(offset + i) % len(batches)], precision)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return n / (time.perf_counter() - start)

    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for precision in rates:
        run(precision, 3, 0)  # warm-up: oneDNN primitives and allocator
    for r in range(args.repeats):
        order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")
        for precision in order:
            rates[precision].append(run(precision, args.steps, r))

    n_params = sum(q.numel() for q in model.parameters())
    name = "ISTFTVocoder" if is_vocoder else args.model or cfg["model"]["name"]
    print(
        f"model: {name} from {args.config}.yaml ({n_params / 1e6:.2f} M), batch "
        f"{t['batch_size']} x {cfg['data']['segment_frames']} frames, device {device}, "
        f"{args.threads} thread(s)"
    )
    print(
        f"CPU has native bf16: {cpu_has_native_bf16()}; train.precision auto resolves to "
        f"{resolve_precision('auto', device)} here"
    )
    for precision, values in rates.items():
        print(
            f"{precision}: median {statistics.median(values):.2f} steps/s "
            f"(min {min(values):.2f}, max {max(values):.2f}, {args.repeats} x {args.steps} steps)"
        )
    (l32, g32), (l16, g16) = grads["fp32"], grads["bf16"]
    print(
        f"same weights and batch: loss fp32 {l32:.5f} bf16 {l16:.5f} "
        f"(rel. diff {abs(l16 - l32) / abs(l32):.2e}); gradient norm fp32 {g32:.4f} "
        f"bf16 {g16:.4f} (rel. diff {abs(g16 - g32) / abs(g32):.2e})"
    )
    ratio = statistics.median(rates["bf16"]) / statistics.median(rates["fp32"])
    print(f"RATIO bf16/fp32 steps/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
