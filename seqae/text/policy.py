"""A trained ``SummaryEnv`` policy as a summarizer: :class:`SummaryPolicy`.

``summary_ppo`` trains a stable-baselines3 PPO agent whose policy is an MLP over
:class:`~seqae.text.env.SummaryEnv`'s observations. What writes a summary is only the actor of
that policy (observation -> the logits of drop and keep; the deterministic action is their
argmax), so this module keeps that part as a plain ``nn.Module`` saved in the project's one
format (``config.json`` + ``model.safetensors``, model type ``summary_policy``): no pickle, and
no stable-baselines3 needed to use it.

A *policy summarizer folder* (what ``summary_ppo`` writes as ``output_dir/model/``, and what
``seqae summarize --model`` and the demo read) holds the policy, the tokenizer beside it, the
generator whose frozen encoder gives the observations in ``encoder/``, and ``summarizer.json``
with the limits and the environment's ``actions``.

    >>> policy = SummaryPolicy.from_sb3(ppo.policy, actions="span", max_words=12,
    ...                                 max_article_words=40)
    >>> texts = policy_summaries(policy, GeneratorEncoder(generator, tok), words, max_words=8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from seqae.core.saving import SavedByConfig
from seqae.text.env import ACTIONS, ArticleEncoder, SummaryEnv, rollout_summaries
from seqae.text.tokenizer import as_written, detokenize

__all__ = ["ENCODER_FOLDER", "SummaryPolicy", "policy_summaries"]

#: The subfolder of a policy summarizer folder that holds the observation encoder's generator.
ENCODER_FOLDER = "encoder"


class SummaryPolicy(SavedByConfig, nn.Module):
    """The actor of a PPO policy trained in ``SummaryEnv``: ``tanh`` layers of ``net_arch``
    units and a linear head giving the logits of drop (0) and keep (1).

    Args:
        obs_dim: The observation's size (``SummaryEnv.observation_space.shape[0]``).
        net_arch: The hidden layers' sizes (``ppo.net_arch``).
        actions: The environment's ``actions`` the policy was trained with (``"span"`` or
            ``"words"``); it decides how its choices make a summary.
        max_words: The environment's word limit in training (``SummaryEnv.max_words``).
        max_article_words: The environment's article limit in training. Both scale the
            observation's count features, so the policy reads articles in an environment
            with the same two settings (and longer articles are cut to ``max_article_words``).
    """

    model_type: ClassVar[str] = "summary_policy"

    def __init__(
        self,
        *,
        obs_dim: int,
        net_arch: Sequence[int],
        actions: str,
        max_words: int,
        max_article_words: int,
    ) -> None:
        super().__init__()
        sizes = [obs_dim, *net_arch, max_words, max_article_words]
        if not net_arch or any(int(n) < 1 for n in sizes):
            raise ValueError(
                "SummaryPolicy: obs_dim, every net_arch size, max_words and max_article_words "
                f"must be >= 1, got {obs_dim}, {list(net_arch)}, {max_words}, {max_article_words}"
            )
        if actions not in ACTIONS:
            raise ValueError(f"SummaryPolicy: actions must be one of {ACTIONS}, got {actions!r}")
        self.obs_dim = int(obs_dim)
        self.net_arch = [int(n) for n in net_arch]
        self.actions = actions
        self.max_words = int(max_words)
        self.max_article_words = int(max_article_words)
        layers: list[nn.Module] = []
        width = self.obs_dim
        for size in self.net_arch:
            layers += [nn.Linear(width, size), nn.Tanh()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: what :meth:`from_config` takes."""
        return {
            "obs_dim": self.obs_dim,
            "net_arch": list(self.net_arch),
            "actions": self.actions,
            "max_words": self.max_words,
            "max_article_words": self.max_article_words,
        }

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, obs_dim)`` observations -> ``(B, 2)`` logits of drop and keep."""
        return self.head(self.body(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic actions (argmax) of ``(B, obs_dim)`` observations, ``(B,)``."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, self.obs_dim)
        return self(x).argmax(dim=-1).numpy()

    @classmethod
    def from_sb3(
        cls, policy: nn.Module, *, actions: str, max_words: int, max_article_words: int
    ) -> SummaryPolicy:
        """The actor of a stable-baselines3 ``ActorCriticPolicy`` (``MlpPolicy`` with tanh
        layers over a flat ``Box`` observation), with its weights; the other arguments are
        the training environment's settings.

        Raises:
            ValueError: The policy is not shaped like that.
        """
        body = getattr(getattr(policy, "mlp_extractor", None), "policy_net", None)
        head = getattr(policy, "action_net", None)
        layers = list(body) if isinstance(body, nn.Sequential) else []
        if (
            not isinstance(head, nn.Linear)
            or head.out_features != 2
            or not layers
            or not all(isinstance(m, nn.Linear | nn.Tanh) for m in layers)
        ):
            raise ValueError(
                "SummaryPolicy.from_sb3: expected an MlpPolicy of tanh layers with two actions"
            )
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        sizes = [m.out_features for m in linears]
        first = linears[0]
        model = cls(
            obs_dim=first.in_features,
            net_arch=sizes,
            actions=actions,
            max_words=max_words,
            max_article_words=max_article_words,
        )
        model.body.load_state_dict(body.state_dict())
        model.head.load_state_dict(head.state_dict())
        return model.eval()


def policy_summaries(
    policy: SummaryPolicy,
    encoder: ArticleEncoder,
    words: Sequence[Sequence[str]],
    *,
    max_words: int,
    batch_size: int = 64,
    written: Sequence[tuple[str, Sequence[tuple[int, int]]]] | None = None,
) -> list[str]:
    """The policy's summary of each article (its words, at most the policy's
    ``max_article_words``; an empty article gets ``""``), written in a ``SummaryEnv`` with the
    policy's training settings and cut to ``max_words`` words.

    ``written`` gives each article as the text its words were read from, with their offsets
    (:meth:`~seqae.text.tokenizer.WordTokenizer.word_offsets`); the summaries then keep the
    article's own case and spacing (:func:`~seqae.text.tokenizer.as_written`: a span is a
    verbatim piece of the article). Without it they are the normalised words, detokenized."""
    if written is not None and len(written) != len(words):
        raise ValueError(
            f"policy_summaries: {len(written)} written articles for {len(words)} word lists"
        )
    todo = [i for i, w in enumerate(words) if w]
    out = [""] * len(words)
    if not todo:
        return out
    env = SummaryEnv(
        articles=[words[i] for i in todo],
        encoder=encoder,
        reward=None,
        max_words=policy.max_words,
        max_article_words=policy.max_article_words,
        actions=policy.actions,
    )
    kept = rollout_summaries(env, policy.act, batch_size=batch_size)
    for i, positions in zip(todo, kept, strict=True):
        positions = positions[:max_words]
        if written is None:
            out[i] = detokenize([words[i][p] for p in positions])
        else:
            out[i] = as_written(*written[i], positions)
    return out
