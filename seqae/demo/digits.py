"""What the VAE and the VQ-VAE tabs share: digits autoencoders and their test digits, and the
page's sections built the same way for both.

- :class:`DigitsModels`: a tab's autoencoders by name and their runs' test digits, through the
  app's cache.
- :func:`interpolation_strips` and :func:`prior_samples`: the images of the "between two test
  digits" and "samples from the prior" sections, built by :func:`between_digits_section` and
  :func:`prior_samples_section` (with the tutorial's moon-phase example beside the strips).
- :func:`model_dropdown`, :func:`digit_picker`, :func:`decoded_image`,
  :func:`wire_live_decoding` and :func:`on_model_change`: the sliders that decode live, the
  button that sets them to a test digit's code, and a tab refreshed when another model is
  chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch
from torch import Tensor

from seqae.core.model import Autoencoder
from seqae.demo.cache import ModelCache
from seqae.demo.discovery import FoundModel
from seqae.demo.errors import DemoInputError, shown_in_page
from seqae.demo.images import IMAGE_BUTTONS, grid_image, moon_phase_strips

__all__ = [
    "BIG",
    "MAX_SLIDERS",
    "SMALL",
    "DigitsModels",
    "Section",
    "between_digits_section",
    "decoded_image",
    "digit_picker",
    "interpolation_strips",
    "model_dropdown",
    "on_model_change",
    "prior_samples",
    "prior_samples_section",
    "wire_live_decoding",
]

#: Most latent dimensions (or code positions) given a slider; the rest stay at 0 (or code 0).
MAX_SLIDERS = 16
#: Decodings in a strip between two digits, by default.
DEFAULT_STEPS = 8
#: The digits the strips start between: the first test 3 and the first test 8.
DEFAULT_PAIR = (3, 8)
#: Images drawn from the prior at a time.
N_SAMPLES = 32
#: Screen pixels per digit pixel: one decoded digit, and the digits of a strip or grid.
BIG, SMALL = 24, 8


class DigitsModels:
    """The autoencoders of one tab (by name) and their runs' test digits, through the cache.

    Args:
        models: The found models of the tab's kind.
        cache: The app's model cache.
    """

    def __init__(self, models: Sequence[FoundModel], cache: ModelCache) -> None:
        self.by_name = {m.name: m for m in models}
        self.cache = cache

    @property
    def names(self) -> list[str]:
        """The models' names, sorted."""
        return sorted(self.by_name)

    def found(self, name: str) -> FoundModel:
        """The found model called ``name``."""
        if name not in self.by_name:
            raise DemoInputError(
                f"no model {name!r} here; choose one of {', '.join(self.names) or '(none)'}"
            )
        return self.by_name[name]

    def model(self, name: str) -> Autoencoder:
        """The autoencoder called ``name``, loaded once, in evaluation mode."""
        path = self.found(name).path
        return self.cache.get(
            ("autoencoder", path), lambda: Autoencoder.from_pretrained(path).eval()
        )

    def test_set(self, name: str) -> tuple[Tensor, Tensor]:
        """The test split the run held out: ``(N, 64)`` values in [0, 1] and ``(N,)`` labels,
        the same split as the recipe's (``data.val_fraction``, ``data.test_fraction``, ``seed``
        of its config.yaml; the recipes' defaults when the run has none)."""
        from seqae.data.digits import load_digits_splits

        found = self.found(name)
        key = (
            float(found.run_setting("data.val_fraction", 0.1)),
            float(found.run_setting("data.test_fraction", 0.2)),
            int(found.run_setting("seed", 0)),
        )

        def load() -> tuple[Tensor, Tensor]:
            splits = load_digits_splits(val_fraction=key[0], test_fraction=key[1], seed=key[2])
            return splits.test.tensors()

        return self.cache.get(("test_digits", *key), load)

    def test_digits(self, name: str) -> Tensor:
        """The test digits of model ``name``'s run, ``(N, 64)`` (see :meth:`test_set`)."""
        return self.test_set(name)[0]

    def first_of(self, name: str, label: int) -> int:
        """The index of the first test digit showing ``label`` (0 when there is none)."""
        hits = (self.test_set(name)[1] == label).nonzero()
        return int(hits[0, 0]) if len(hits) else 0

    def test_digit(self, name: str, index: float) -> Tensor:
        """Test digit number ``index`` (0-based) of model ``name``'s run, ``(64,)``."""
        digits = self.test_digits(name)
        i = int(index)
        if not 0 <= i < len(digits):
            raise DemoInputError(f"test digit {i} does not exist; choose 0 to {len(digits) - 1}")
        return digits[i]


def interpolation_strips(
    model: Autoencoder, x_a: Tensor, x_b: Tensor, steps: int
) -> dict[str, np.ndarray]:
    """Three strips of ``steps`` images from ``x_a`` to ``x_b``: ``"pixels"`` (the pixel-wise
    blend), ``"linear"`` and ``"spherical"`` (decodings along the two paths between their
    codes; :meth:`~seqae.core.model.Autoencoder.interpolate`).

    Args:
        model: A digits autoencoder.
        x_a: The first digit, ``(64,)``.
        x_b: The last digit.
        steps: Images per strip, the ends included (>= 2).
    """
    if steps < 2:
        raise DemoInputError(f"a strip needs at least 2 steps, got {steps}")
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    strips = {"pixels": (1 - t) * x_a[None] + t * x_b[None]}
    for key, method in (("linear", "linear"), ("spherical", "slerp")):
        strips[key] = model.interpolate(x_a[None], x_b[None], steps=steps, method=method)[:, 0]
    return {key: grid_image(images, ncol=steps, scale=SMALL) for key, images in strips.items()}


def prior_samples(model: Autoencoder, n: int, seed: int, **prior: Any) -> np.ndarray:
    """``n`` digits decoded from codes drawn from the model's prior, the same for the same
    ``seed`` (the global random state is left as it was).

    Args:
        model: A digits autoencoder.
        n: How many.
        seed: The seed of the draw.
        **prior: Passed to the bottleneck's ``sample_prior`` (a VQ-VAE's ``positions``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        images = model.sample(n, **prior)
    return grid_image(images, ncol=8, scale=SMALL)


@dataclass
class Section:
    """A section shared by the VAE and VQ-VAE tabs, built inside a Blocks context.

    Attributes:
        inputs: Its own input components (besides the tab's model choice).
        outputs: Its output components.
        refresh: ``refresh(model_name, *input_values)`` -> the outputs' values; the tab calls
            it when another model is chosen.
    """

    inputs: list[Any]
    outputs: list[Any]
    refresh: Callable[..., list[Any]]


def between_digits_section(digits: DigitsModels, model_choice: Any, default: str) -> Section:
    """Build the "between two test digits" section: two test digits, the strips between them
    and the moon-phase example.

    Args:
        digits: The tab's models.
        model_choice: The tab's model dropdown (an input of every event here).
        default: The model shown first.
    """

    def refresh(name: str, i: float, j: float, n: float) -> list[Any]:
        model = digits.model(name)
        x_a, x_b = digits.test_digit(name, i), digits.test_digit(name, j)
        strips = interpolation_strips(model, x_a, x_b, int(n))
        previews = [grid_image(x[None], ncol=1, scale=12) for x in (x_a, x_b)]
        return [*previews, strips["pixels"], strips["linear"], strips["spherical"]]

    n_test = len(digits.test_digits(default))
    i, j = (digits.first_of(default, label) for label in DEFAULT_PAIR)
    first = refresh(default, i, j, DEFAULT_STEPS)
    gr.Markdown("### Between two test digits")
    with gr.Row():
        a = gr.Slider(0, n_test - 1, value=i, step=1, label="test digit A", elem_id="digit-a")
        b = gr.Slider(0, n_test - 1, value=j, step=1, label="test digit B", elem_id="digit-b")
        steps = gr.Slider(3, 16, value=DEFAULT_STEPS, step=1, label="steps")
    with gr.Row():
        previews = [
            gr.Image(
                value, label=label, height=120, width=120, interactive=False, buttons=IMAGE_BUTTONS
            )
            for value, label in zip(first[:2], ("A", "B"), strict=True)
        ]
    labels = (
        "blend of the pixels (what averaging the images gives)",
        "straight line between the codes (linear)",
        "great circle between the codes (spherical)",
    )
    strips = [
        gr.Image(value, label=label, interactive=False, buttons=IMAGE_BUTTONS)
        for value, label in zip(first[2:], labels, strict=True)
    ]
    gr.Markdown(
        "**The moon-phase example.** Between a photo of the full moon and one of the half "
        "moon, the pixel blend is a half moon with a ghost of the full one (bottom row below), "
        "never a moon in between. The phases in between (top row) are what a latent space "
        "should give: a model whose codes vary smoothly decodes the points between two codes "
        "to images of the same kind, as the strips above do for digits, where the blend of the "
        "pixels shows two digits laid over each other."
    )
    gr.Image(
        moon_phase_strips(DEFAULT_STEPS),
        label="moon phases (top) and the pixel blend of the two ends (bottom)",
        interactive=False,
        buttons=IMAGE_BUTTONS,
    )
    section = Section([a, b, steps], [*previews, *strips], refresh)
    handler = shown_in_page(refresh)
    for control in section.inputs:
        control.release(
            handler, [model_choice, *section.inputs], section.outputs, show_progress="hidden"
        )
    return section


def prior_samples_section(
    digits: DigitsModels,
    model_choice: Any,
    default: str,
    *,
    what: str,
    prior: Callable[[str], dict[str, Any]] = lambda name: {},
) -> Section:
    """Build the "samples from the prior" section.

    Args:
        digits: The tab's models.
        model_choice: The tab's model dropdown.
        default: The model shown first.
        what: What the prior is, for the heading ("N(0, I)", "uniform over the codes").
        prior: ``prior(model_name)`` -> keyword arguments of :func:`prior_samples`'s draw.
    """

    def refresh(name: str, seed: float | None) -> list[Any]:
        return [prior_samples(digits.model(name), N_SAMPLES, int(seed or 0), **prior(name))]

    gr.Markdown(f"### Samples from the prior ({what})")
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label="seed", minimum=0)
        draw = gr.Button("Draw samples")
    first = refresh(default, 0)[0]
    image = gr.Image(
        first,
        label=f"{N_SAMPLES} samples",
        interactive=False,
        buttons=IMAGE_BUTTONS,
        height=first.shape[0] + 40,  # all rows: the default height would cut the last one
    )
    section = Section([seed], [image], refresh)
    draw.click(shown_in_page(refresh), [model_choice, seed], image)
    return section


def on_model_change(
    model_choice: Any,
    own_outputs: list[Any],
    own_refresh: Callable[[str], list[Any]],
    sections: Sequence[Section],
) -> None:
    """Refresh a whole tab when another model is chosen: the tab's own part
    (``own_refresh(name)`` -> values or updates of ``own_outputs``) and every shared section,
    each from its current inputs."""

    def change(name: str, *values: Any) -> list[Any]:
        out, k = own_refresh(name), 0
        for section in sections:
            out += section.refresh(name, *values[k : k + len(section.inputs)])
            k += len(section.inputs)
        return out

    inputs = [model_choice, *(c for s in sections for c in s.inputs)]
    outputs = [*own_outputs, *(c for s in sections for c in s.outputs)]
    model_choice.change(shown_in_page(change), inputs, outputs)


def model_dropdown(intro: str, digits: DigitsModels, default: str, what: str) -> Any:
    """A tab's introduction and its model dropdown (``model ({what})``)."""
    gr.Markdown(intro)
    return gr.Dropdown(digits.names, value=default, label=f"model ({what})")


def digit_picker(button: str, elem_id: str) -> tuple[Any, Any]:
    """A test-digit number and a button beside it (``(number, button)``, HTML ids
    ``{elem_id}-digit`` and ``{elem_id}-set``), in the current layout context."""
    with gr.Row():
        number = gr.Number(
            value=0, precision=0, minimum=0, label="test digit", elem_id=f"{elem_id}-digit"
        )
        return number, gr.Button(button, elem_id=f"{elem_id}-set")


def decoded_image(value: np.ndarray, elem_id: str) -> Any:
    """The image a tab's sliders decode into."""
    return gr.Image(
        value, label="decoded", elem_id=elem_id, interactive=False, buttons=IMAGE_BUTTONS
    )


def wire_live_decoding(
    model_choice: Any,
    sliders: list[Any],
    decoded: Any,
    decode: Callable[..., np.ndarray],
    picker: tuple[Any, Any],
    code_of: Callable[[str, float], list[Any]],
) -> None:
    """Decode live as a slider moves, and set the sliders to a test digit's code on the
    picker's button.

    Args:
        model_choice: The tab's model dropdown.
        sliders: The tab's sliders.
        decoded: The image they decode into.
        decode: ``decode(model_name, *slider_values)`` -> the image.
        picker: The :func:`digit_picker` number and button.
        code_of: ``code_of(model_name, digit_index)`` -> one value per slider.
    """
    handler = shown_in_page(decode)
    for slider in sliders:
        slider.input(
            handler,
            [model_choice, *sliders],
            decoded,
            trigger_mode="always_last",
            show_progress="hidden",
        )

    def from_digit(name: str, index: float) -> list[Any]:
        values = code_of(name, index)
        return [*values, decode(name, *values)]

    number, button = picker
    button.click(shown_in_page(from_digit), [model_choice, number], [*sliders, decoded])
