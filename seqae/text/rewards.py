"""Rewards and the policy-gradient loss that train a summary generator with REINFORCE.

The generator of Wang & Lee 2018 (arXiv 1810.02851) samples a summary ``y_1..y_T`` word by word
and is trained with REINFORCE (Williams 1992) on rewards that need no gradient:

- a sequence-level *reconstruction* reward (how well the reconstructor recovers the article
  from the summary, e.g. its negative per-word cross-entropy), shared by every word;
- per-word *discriminator* rewards ``d_t`` (:meth:`~seqae.text.discriminator.
  PrefixDiscriminator.token_rewards`), summed into a discounted reward-to-go, so word ``t`` is
  credited only for the prefixes it helps form: ``sum_{k >= t} gamma^(k - t) d_k``;
- a sequence-level *length* term that penalises words beyond a target length.

:class:`SummaryReward` combines them into per-word returns ``R_t``; :func:`self_critical_advantage`
subtracts the returns of the greedy decode of the same article (Rennie et al. 2017, arXiv
1612.00563); :func:`policy_gradient_loss` is ``-(1/B) sum_b sum_t A_bt log pi(y_bt)``:

    >>> reward = SummaryReward(gamma=0.95, target_length=12, length_weight=0.1)
    >>> sample = reward(recon_sample, disc.token_rewards(ids, lens), lens)
    >>> greedy = reward(recon_greedy, disc.token_rewards(g_ids, g_lens), g_lens)
    >>> adv = self_critical_advantage(sample.returns, greedy.total, mask=sample.mask)
    >>> loss = policy_gradient_loss(token_log_probs, adv, sample.mask)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from seqae.core.losses import reinforce_loss

__all__ = [
    "discounted_returns",
    "self_critical_advantage",
    "policy_gradient_loss",
    "SummaryRewardOutput",
    "SummaryReward",
]


def _check_mask(values: Tensor, mask: Tensor, who: str) -> Tensor:
    if values.dim() != 2 or mask.shape != values.shape:
        raise ValueError(
            f"{who}: expected (B, T) values and a mask of the same shape, got "
            f"{tuple(values.shape)} and {tuple(mask.shape)}"
        )
    return mask.to(device=values.device, dtype=torch.bool)


def discounted_returns(token_rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go of every position: ``G_t = sum_{k >= t, mask_k} gamma^(k - t) r_k``.

    Computed backwards, ``G_t = r_t + gamma * G_{t+1}``, with masked rewards set to 0; a
    position outside the mask gets ``G_t = 0``.

    Args:
        token_rewards: ``(B, T)`` per-token rewards.
        mask: ``(B, T)`` valid (non-pad) positions, a prefix of each row.
        gamma: Discount in ``[0, 1]`` (1: plain sum of the rewards still to come; 0: each word
            gets its own reward only).

    Returns:
        ``(B, T)`` returns, detached.
    """
    mask = _check_mask(token_rewards, mask, "discounted_returns")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"discounted_returns: gamma must be in [0, 1], got {gamma!r}")
    rewards = token_rewards.detach().masked_fill(~mask, 0.0)
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns.masked_fill(~mask, 0.0)


def self_critical_advantage(
    sample_reward: Tensor, greedy_reward: Tensor, *, mask: Tensor | None = None
) -> Tensor:
    """Self-critical advantage ``A = R(sample) - R(greedy)`` (Rennie et al. 2017, arXiv
    1612.00563): positive when the sampled summary beats the greedy decode of the same input.

    The greedy reward does not depend on the sample, so as a baseline it leaves the REINFORCE
    estimate unbiased. Decode the greedy summary under ``torch.no_grad()``.

    Args:
        sample_reward: ``(B,)`` sequence rewards or ``(B, T)`` per-token returns of the samples.
        greedy_reward: ``(B,)`` (broadcast over ``T``) or the same shape as ``sample_reward``.
        mask: ``(B, T)`` valid positions of the samples, for per-token rewards: the advantage
            is 0 elsewhere.

    Returns:
        The advantage, shaped like ``sample_reward``, detached.
    """
    sample, greedy = sample_reward.detach(), greedy_reward.detach()
    if greedy.dim() == 1 and sample.dim() == 2:
        greedy = greedy.unsqueeze(1)
    if greedy.shape[0] != sample.shape[0] or greedy.dim() != sample.dim():
        raise ValueError(
            f"self_critical_advantage: greedy reward {tuple(greedy_reward.shape)} does not fit "
            f"sample reward {tuple(sample_reward.shape)}"
        )
    advantage = sample - greedy
    if mask is not None:
        advantage = advantage.masked_fill(
            ~_check_mask(advantage, mask, "self_critical_advantage"), 0.0
        )
    return advantage


def policy_gradient_loss(
    token_log_probs: Tensor,
    token_advantages: Tensor,
    mask: Tensor,
    *,
    entropy: Tensor | None = None,
    entropy_weight: float = 0.0,
) -> Tensor:
    """REINFORCE with per-token advantages:
    ``L = -(1/B) sum_b sum_t mask_bt (A_bt log pi(y_bt) + entropy_weight H_bt)``.

    Its gradient is the policy-gradient estimate ``-E[sum_t A_t grad log pi(y_t | y_<t)]``; the
    advantages are detached. This is :func:`seqae.core.losses.reinforce_loss` with the
    advantage folded into each token's term: ``reinforce_loss`` multiplies one advantage per
    sequence by ``sum_t log pi_t``, so it is given ``A_t log pi_t`` as the per-token
    "log-probabilities" and a reward of 1 per sequence, which gives exactly the sum above (and
    its masking and entropy bonus).

    Args:
        token_log_probs: ``(B, T)`` log-probabilities of the sampled tokens, with gradient.
        token_advantages: ``(B, T)`` advantages (e.g. :func:`self_critical_advantage` of
            per-token returns).
        mask: ``(B, T)`` valid (sampled, non-pad) positions.
        entropy: Optional ``(B, T)`` per-token policy entropy, for an exploration bonus.
        entropy_weight: Weight of the entropy bonus (subtracted from the loss).

    Returns:
        A scalar to minimise.
    """
    mask = _check_mask(token_log_probs, mask, "policy_gradient_loss")
    if token_advantages.shape != token_log_probs.shape:
        raise ValueError(
            f"policy_gradient_loss: advantages {tuple(token_advantages.shape)} and log-probs "
            f"{tuple(token_log_probs.shape)} differ in shape"
        )
    weighted = token_advantages.detach() * token_log_probs
    ones = torch.ones(weighted.shape[0], dtype=weighted.dtype, device=weighted.device)
    return reinforce_loss(weighted, ones, mask=mask, entropy=entropy, entropy_weight=entropy_weight)


class SummaryRewardOutput(NamedTuple):
    """What :class:`SummaryReward` gives for a batch of summaries."""

    #: ``(B, T)`` per-word returns ``R_t`` (0 outside the mask), for the policy gradient.
    returns: Tensor
    #: ``(B,)`` the whole summary's reward: ``R_0``, the return of its first word (for an
    #: empty summary, its reconstruction and length terms).
    total: Tensor
    #: ``(B, T)`` valid positions.
    mask: Tensor
    #: ``(B,)`` each weighted term of ``total`` by name (``reconstruction``, ``discriminator``
    #: (its discounted sum from the first word), ``length``), for logging.
    terms: dict[str, Tensor]


#: How the length term counts (:class:`SummaryReward`).
LENGTH_MODES = ("over", "distance")


class SummaryReward:
    """Per-word returns of a summary from reconstruction, discriminator and length terms.

    ``R_t = w_rec * rec + w_len * len_term + w_disc * sum_{k >= t} gamma^(k - t) d_k`` for the
    valid positions ``t < L``, where ``rec`` is the sequence-level reconstruction reward (shared
    by every word: each word shaped the summary the reconstructor read), ``d_k`` the
    discriminator's per-word rewards, and ``len_term = -max(0, L - target_length)`` the number
    of words beyond the target (``length_mode="over"``) or ``-|L - target_length|`` the distance
    from it (``"distance"``: also short summaries pay, which keeps a writer whose
    discriminator rewards are mostly negative from collapsing to one or two words); 0 when no
    target is set.

    Args:
        reconstruction_weight: ``w_rec``.
        discriminator_weight: ``w_disc``.
        gamma: Discount of the discriminator rewards, in ``[0, 1]``.
        target_length: The length the penalty is measured from (``None``: no penalty).
        length_weight: ``w_len`` (>= 0), per word beyond (or away from) ``target_length``.
        length_mode: ``"over"`` or ``"distance"`` (see above).
    """

    def __init__(
        self,
        *,
        reconstruction_weight: float = 1.0,
        discriminator_weight: float = 1.0,
        gamma: float = 1.0,
        target_length: int | None = None,
        length_weight: float = 0.0,
        length_mode: str = "over",
    ) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"SummaryReward: gamma must be in [0, 1], got {gamma!r}")
        if target_length is not None and target_length < 0:
            raise ValueError(f"SummaryReward: target_length must be >= 0, got {target_length!r}")
        if length_weight < 0:
            raise ValueError(f"SummaryReward: length_weight must be >= 0, got {length_weight!r}")
        if length_mode not in LENGTH_MODES:
            raise ValueError(
                f"SummaryReward: length_mode must be one of {LENGTH_MODES}, got {length_mode!r}"
            )
        self.length_mode = length_mode
        self.reconstruction_weight = reconstruction_weight
        self.discriminator_weight = discriminator_weight
        self.gamma = gamma
        self.target_length = target_length
        self.length_weight = length_weight

    def __call__(
        self, reconstruction: Tensor, discriminator: Tensor, lengths: Tensor
    ) -> SummaryRewardOutput:
        """Combine the rewards of a batch of summaries.

        Args:
            reconstruction: ``(B,)`` sequence-level reconstruction rewards (higher is better).
            discriminator: ``(B, T)`` per-word discriminator rewards.
            lengths: ``(B,)`` number of words of each summary (the length the penalty counts).

        Returns:
            A :class:`SummaryRewardOutput`; everything detached.
        """
        if discriminator.dim() != 2 or reconstruction.shape != discriminator.shape[:1]:
            raise ValueError(
                f"SummaryReward: expected reconstruction (B,) and discriminator (B, T), got "
                f"{tuple(reconstruction.shape)} and {tuple(discriminator.shape)}"
            )
        if lengths.shape != reconstruction.shape:
            raise ValueError(f"SummaryReward: lengths must be (B,), got {tuple(lengths.shape)}")
        device = discriminator.device
        lengths = lengths.to(device)
        steps = discriminator.shape[1]
        mask = torch.arange(steps, device=device).unsqueeze(0) < lengths.unsqueeze(1)
        disc = self.discriminator_weight * discounted_returns(discriminator, mask, self.gamma)
        rec = self.reconstruction_weight * reconstruction.detach().to(disc.dtype)
        if self.target_length is None:
            length = torch.zeros_like(rec)
        else:
            excess = lengths.to(disc.dtype) - self.target_length
            excess = excess.clamp(min=0.0) if self.length_mode == "over" else excess.abs()
            length = -self.length_weight * excess
        shared = (rec + length).unsqueeze(1)
        returns = (disc + shared).masked_fill(~mask, 0.0)
        disc_total = disc[:, 0] if steps else torch.zeros_like(rec)
        total = rec + length + disc_total
        terms = {"reconstruction": rec, "discriminator": disc_total, "length": length}
        return SummaryRewardOutput(returns=returns, total=total, mask=mask, terms=terms)
