"""seqae's built-in core components, registered through the ``seqae.plugins`` entry point."""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    """Register the core encoders, decoders, bottlenecks, models, schedules, datasets and commands."""
    from seqae import codes
    from seqae.core import binary, gaussian, identity, model, nets, onehot, schedules, vq
    from seqae.core.classifier import BitAutoencoder, OneHotClassifier
    from seqae.data import digits, files, shapes

    registry.register("bottleneck", "identity", identity.IdentityBottleneck)
    registry.register("bottleneck", "gaussian", gaussian.GaussianBottleneck)
    registry.register("bottleneck", "vq", vq.VectorQuantizer)
    registry.register("bottleneck", "binary", binary.BinaryBottleneck)
    registry.register("bottleneck", "onehot", onehot.OneHotBottleneck)

    for name, factory in nets.ENCODERS.items():
        registry.register("encoder", name, factory)
    for name, factory in nets.DECODERS.items():
        registry.register("decoder", name, factory)

    registry.register("model", "autoencoder", model.Autoencoder.from_config)
    registry.register("model", "stacked_autoencoder", model.Autoencoder.stacked)
    # saved-model folders: config.json's model_type -> the class whose from_pretrained loads it
    registry.register("saved_model", model.Autoencoder.model_type, model.Autoencoder)
    for code_model in (OneHotClassifier, BitAutoencoder):
        registry.register("model", code_model.model_type, code_model.from_config)
        registry.register("saved_model", code_model.model_type, code_model)

    for schedule in (
        schedules.ConstantSchedule,
        schedules.LinearSchedule,
        schedules.CosineSchedule,
        schedules.CyclicalSchedule,
        schedules.ExponentialSchedule,
        schedules.WarmupCosineSchedule,
    ):
        registry.register("schedule", schedule.name, schedule)

    registry.register("dataset", "digits", digits.load_digits_splits)
    registry.register("dataset", "shapes", shapes.ShapesDataset)
    registry.register("dataset", "npz", files.NpzDataset)
    registry.register("dataset", "image_folder", files.ImageFolderDataset)

    registry.register("cli", "codes", codes.add_parser)
