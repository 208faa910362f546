"""The VQ-VAE tab: the discrete codes of a VQ-VAE trained on the 8x8 digits (``seqae run vqvae``).

A digit is ``M`` code vectors, each one of the codebook's ``K`` entries. One slider per position
picks its code and the digit is decoded live; the codebook is shown as one image of ``K`` tiles,
tile ``k`` being what the decoder makes of code ``k`` at every position, and clicking a tile puts
that code into the chosen position. A test digit's own codes can be loaded into the sliders; the strips
between two test digits and the samples from the prior (codes drawn uniformly) are the VAE tab's
sections (:mod:`seqae.demo.digits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
import torch

from seqae.demo import digits as shared
from seqae.demo.cache import ModelCache
from seqae.demo.discovery import DIGIT_PIXELS, FoundModel
from seqae.demo.errors import DemoInputError, shown_in_page
from seqae.demo.images import IMAGE_BUTTONS, grid_image

__all__ = ["BOOK_COLUMNS", "BOOK_SCALE", "CodesTab"]

#: Codes per row of the codebook image.
BOOK_COLUMNS = 16
#: Screen pixels per digit pixel in the codebook image.
BOOK_SCALE = 6


class CodesTab:
    """The VQ-VAE tab's handlers and layout.

    Args:
        models: The found VQ-VAEs (kind ``vqvae``).
        cache: The app's model cache.
    """

    def __init__(self, models: Sequence[FoundModel], cache: ModelCache) -> None:
        self.digits = shared.DigitsModels(models, cache)

    def shape(self, name: str) -> tuple[int, int]:
        """``(positions, codebook size)`` of model ``name``: the code vectors per digit and
        the codes each can take."""
        config = self.digits.found(name).config
        positions = int((config["encoder"].get("out_shape") or [1])[0])
        return positions, int(config["bottleneck"]["codebook_size"])

    def _decode(self, name: str, indices: torch.Tensor) -> torch.Tensor:
        """Digits ``(B, 64)`` decoded from code indices ``(B, positions)``."""
        model = self.digits.model(name)
        with torch.no_grad():
            return model.mean(model.decode(model.bottleneck.lookup(indices)))

    def decode(self, name: str, *codes: float) -> np.ndarray:
        """The digit decoded from the sliders' codes (positions beyond the sliders take code 0).

        Raises:
            DemoInputError: a code outside the codebook.
        """
        positions, size = self.shape(name)
        values = [int(c) for c in codes[:positions]]
        bad = [c for c in values if not 0 <= c < size]
        if bad:
            raise DemoInputError(
                f"code {bad[0]} does not exist: the codebook has codes 0 to {size - 1}"
            )
        indices = torch.zeros(1, positions, dtype=torch.long)
        indices[0, : len(values)] = torch.tensor(values, dtype=torch.long)
        return grid_image(self._decode(name, indices), ncol=1, scale=shared.BIG)

    def codebook(self, name: str) -> np.ndarray:
        """The codebook as one image: tile ``k`` (row-major, :data:`BOOK_COLUMNS` a row) is the
        digit decoded with code ``k`` at every position."""
        positions, size = self.shape(name)
        indices = torch.arange(size)[:, None].expand(size, positions)
        return grid_image(self._decode(name, indices), ncol=BOOK_COLUMNS, scale=BOOK_SCALE)

    def code_at(self, name: str, x: int, y: int) -> int | None:
        """The code whose tile holds pixel ``(x, y)`` of :meth:`codebook`'s image (None for a
        gap between tiles or an empty cell)."""
        _, size = self.shape(name)
        side = round(math.sqrt(DIGIT_PIXELS)) * BOOK_SCALE
        step = side + BOOK_SCALE  # a tile and the one-pixel gap after it, enlarged
        column, row = divmod(int(x), step), divmod(int(y), step)
        if column[1] >= side or row[1] >= side or column[0] >= BOOK_COLUMNS:
            return None
        code = row[0] * BOOK_COLUMNS + column[0]
        return code if code < size else None

    def codes_of(self, name: str, index: float) -> list[int]:
        """Test digit ``index``'s codes, one per slider (0 beyond the model's positions)."""
        model = self.digits.model(name)
        with torch.no_grad():
            indices = model.encode(self.digits.test_digit(name, index)[None]).info["indices"]
        codes = indices.reshape(-1).tolist()[: shared.MAX_SLIDERS]
        return codes + [0] * (shared.MAX_SLIDERS - len(codes))

    def build(self) -> None:
        """Build the tab's content inside the current Blocks context."""
        default = self.digits.names[0]
        positions, size = self.shape(default)
        intro = (
            f"A digit is {positions} code vectors, each one of {size} codes "
            f"({positions} x log2({size}) = {positions * math.log2(size):g} bits). Pick the code "
            f"of each position (at most {shared.MAX_SLIDERS} get a slider), or click a code of the "
            "codebook to put it into the chosen position."
        )
        choice = shared.model_dropdown(intro, self.digits, default, "a VQ-VAE run")
        with gr.Row():
            with gr.Column():
                sliders = [
                    gr.Slider(
                        0,
                        size - 1,
                        value=0,
                        step=1,
                        label=f"code at position {k + 1}",
                        elem_id=f"code-{k + 1}",
                        visible=k < positions,
                    )
                    for k in range(shared.MAX_SLIDERS)
                ]
                target = gr.Radio(
                    [str(k + 1) for k in range(min(positions, shared.MAX_SLIDERS))],
                    value="1",
                    label="position a clicked code goes into",
                )
                picker = shared.digit_picker("Set the sliders to its codes", "codes")
            decoded = shared.decoded_image(self.decode(default), "codes-decoded")
        book = gr.Image(
            self.codebook(default),
            label=(
                f"the codebook, {BOOK_COLUMNS} codes a row from code 0 at the top left: code k "
                "at every position (click one)"
            ),
            interactive=False,
            buttons=IMAGE_BUTTONS,
            elem_id="codebook",
        )
        shared.wire_live_decoding(choice, sliders, decoded, self.decode, picker, self.codes_of)

        def pick(evt: gr.SelectData, name: str, position: str, *codes: float) -> list[Any]:
            values = [int(c) for c in codes]
            code = self.code_at(name, *evt.index)
            if code is None:  # a click between the tiles
                return [gr.update() for _ in values] + [gr.update()]
            values[int(position) - 1] = code
            return [*values, self.decode(name, *values)]

        book.select(shown_in_page(pick), [choice, target, *sliders], [*sliders, decoded])

        sections = [
            shared.between_digits_section(self.digits, choice, default),
            shared.prior_samples_section(
                self.digits,
                choice,
                default,
                what="codes drawn uniformly",
                prior=lambda name: {"positions": (self.shape(name)[0],)},
            ),
        ]

        def own(name: str) -> list[Any]:
            n, k = self.shape(name)
            updates = [
                gr.update(value=0, maximum=k - 1, visible=i < n) for i in range(shared.MAX_SLIDERS)
            ]
            radio = gr.update(
                choices=[str(i + 1) for i in range(min(n, shared.MAX_SLIDERS))], value="1"
            )
            return [*updates, radio, self.decode(name), self.codebook(name)]

        shared.on_model_change(choice, [*sliders, target, decoded, book], own, sections)
