"""What a training learns, and how its posterior samples: the losses of NPE, SNPE-C
(atomic APT), NLE and NRE-B on one batch, and the posteriors of NLE and NRE (sbi's MCMC
or rejection sampling on the estimator's potential).

The losses follow sbi 0.27's formulas line by line (each cites its sbi function) and
return one value per row; :class:`~vbi_dask.train.module.DensityEstimatorModule` takes
their mean. The atoms of the contrastive losses are drawn, like sbi's, from torch's
global generator on the CPU, so that a seeded batch gives sbi's value exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from sbi.inference.posteriors.mcmc_posterior import MCMCPosterior
from sbi.inference.posteriors.rejection_posterior import RejectionPosterior

from ._names import METHODS, SAMPLERS
from .config import SamplerConfig

if TYPE_CHECKING:
    from .posterior import PosteriorInfo

__all__ = [
    "METHODS",
    "SAMPLERS",
    "NUM_ATOMS",
    "SamplerConfig",
    "MethodLoss",
    "npe_loss",
    "nle_loss",
    "atomic_apt_loss",
    "nre_b_loss",
    "StoreMCMCPosterior",
    "StoreRejectionPosterior",
    "check_method",
]

NUM_ATOMS = 10  # sbi's default for SNPE-C and NRE-B


def check_method(method: Any) -> str:
    """``method`` if it is one of :data:`METHODS`.

    Raises
    ------
    ValueError
        Anything else (the message lists the valid methods).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    return method


# ---------------------------------------------------------------------- losses
def npe_loss(estimator, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log q(theta | x) per row (sbi's ``NPE_C._loss`` in round 0:
    ``self._neural_net.loss(theta, x)``)."""
    return estimator.loss(theta, x)


def nle_loss(estimator, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log q(x | theta) per row (sbi's ``NLEBase._loss``:
    ``self._neural_net.loss(x, condition=theta)``)."""
    return estimator.loss(x, condition=theta)


def _atoms(theta: torch.Tensor, num_atoms: int) -> torch.Tensor:
    """(batch * num_atoms, param): each row's theta followed by ``num_atoms - 1`` others of
    the batch drawn without replacement (sbi's ``probs``/``torch.multinomial`` on the CPU)."""
    batch_size = theta.shape[0]
    probs = torch.ones(batch_size, batch_size) * (1 - torch.eye(batch_size)) / (batch_size - 1)
    choices = torch.multinomial(probs, num_samples=num_atoms - 1, replacement=False).to(theta.device)
    contrasting_theta = theta[choices]
    return torch.cat((theta[:, None, :], contrasting_theta), dim=1).reshape(batch_size * num_atoms, -1)


def _clamp_atoms(num_atoms: int, batch_size: int) -> int:
    # sbi's clamp_and_warn("num_atoms", num_atoms, min_val=2, max_val=batch_size)
    return int(min(max(num_atoms, 2), batch_size))


def atomic_apt_loss(estimator, prior, theta: torch.Tensor, x: torch.Tensor, num_atoms: int = NUM_ATOMS) -> torch.Tensor:
    """-log of the atomic proposal posterior per row (SNPE-C / APT, Greenberg et al. 2019).

    sbi 0.27's ``NPE_C._log_prob_proposal_posterior_atomic`` (without the combined
    loss), negated: with atoms ``theta_1 = theta`` and ``num_atoms - 1`` other thetas of
    the batch, ``-(u_1 - logsumexp_k u_k)`` where ``u_k = log q(theta_k | x) -
    log prior(theta_k)``. Valid whatever proposal the rows were drawn from. A batch of
    one row gives 0 (one atom).
    """
    batch_size = theta.shape[0]
    if batch_size < 2:
        return torch.zeros(batch_size, device=theta.device)
    num_atoms = _clamp_atoms(num_atoms, batch_size)
    repeated_x = x.repeat_interleave(num_atoms, dim=0)  # sbi's repeat_rows: [1, 2] -> [1, 1, 2, 2]
    atomic_theta = _atoms(theta, num_atoms)
    # the prior lives on the CPU (theta is data: no gradient flows through it)
    log_prob_prior = prior.log_prob(atomic_theta.detach().cpu()).to(theta.device).reshape(batch_size, num_atoms)
    log_prob_posterior = estimator.log_prob(atomic_theta[None], repeated_x).reshape(batch_size, num_atoms)
    unnormalized_log_prob = log_prob_posterior - log_prob_prior
    return -(unnormalized_log_prob[:, 0] - torch.logsumexp(unnormalized_log_prob, dim=-1))


def nre_b_loss(classifier, theta: torch.Tensor, x: torch.Tensor, num_atoms: int = NUM_ATOMS) -> torch.Tensor:
    """Cross-entropy of the 1-out-of-``num_atoms`` classification per row (NRE-B /
    SNRE-B, Durkan et al. 2020).

    sbi 0.27's ``NRE_B._loss`` with ``NRE_B._classifier_logits`` (its mean is sbi's
    loss): ``-(f(theta, x) - logsumexp_k f(theta_k, x))`` over atoms ``theta_1 = theta``
    and ``num_atoms - 1`` other thetas of the batch. A batch of one row gives 0.
    """
    batch_size = theta.shape[0]
    if batch_size < 2:
        return torch.zeros(batch_size, device=theta.device)
    num_atoms = _clamp_atoms(num_atoms, batch_size)
    repeated_x = x.repeat_interleave(num_atoms, dim=0)
    logits = classifier(_atoms(theta, num_atoms), repeated_x).reshape(batch_size, num_atoms)
    return -(logits[:, 0] - torch.logsumexp(logits, dim=-1))


@dataclass(frozen=True)
class MethodLoss:
    """The per-row training loss of ``method`` for ``(estimator, theta, x)``.

    ``prior`` (the store's, a torch distribution) is needed by ``"snpe-c"`` only;
    ``num_atoms`` by ``"snpe-c"`` and ``"nre"``.
    """

    method: str = "npe"
    prior: Any = None
    num_atoms: int = NUM_ATOMS

    def __post_init__(self):
        check_method(self.method)
        if self.method == "snpe-c" and self.prior is None:
            raise ValueError("the SNPE-C loss needs the prior")

    def __call__(self, estimator, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.method == "npe":
            return npe_loss(estimator, theta, x)
        if self.method == "nle":
            return nle_loss(estimator, theta, x)
        if self.method == "snpe-c":
            return atomic_apt_loss(estimator, self.prior, theta, x, self.num_atoms)
        return nre_b_loss(estimator, theta, x, self.num_atoms)


# ---------------------------------------------------------------------- posteriors
class StoreMCMCPosterior(MCMCPosterior):
    """sbi's ``MCMCPosterior`` on the potential of an NLE or NRE estimator (``estimator``),
    with its :class:`PosteriorInfo` as ``info``."""

    def __init__(self, estimator, prior, info: "PosteriorInfo", sampler: SamplerConfig):
        potential_fn, theta_transform = _potential(estimator, prior, info.method)
        super().__init__(
            potential_fn,
            prior,
            theta_transform=theta_transform,
            method="slice_np_vectorized",
            num_chains=sampler.num_chains,
            warmup_steps=sampler.warmup_steps,
            thin=sampler.thin,
        )
        self.estimator, self.info = estimator, info


class StoreRejectionPosterior(RejectionPosterior):
    """sbi's ``RejectionPosterior`` (the prior as proposal) on the potential of an NLE or
    NRE estimator (``estimator``), with its :class:`PosteriorInfo` as ``info``."""

    def __init__(self, estimator, prior, info: "PosteriorInfo"):
        potential_fn, theta_transform = _potential(estimator, prior, info.method)
        super().__init__(potential_fn, prior, theta_transform=theta_transform)
        self.estimator, self.info = estimator, info


def _potential(estimator, prior, method: str):
    from sbi.inference.potentials import likelihood_estimator_based_potential, ratio_estimator_based_potential

    if method == "nle":
        return likelihood_estimator_based_potential(estimator, prior, x_o=None)
    if method == "nre":
        return ratio_estimator_based_potential(estimator, prior, x_o=None)
    raise ValueError(f"method {method!r} has no likelihood or ratio potential; valid: nle, nre")


def sampling_posterior(estimator, prior, info: "PosteriorInfo") -> StoreMCMCPosterior | StoreRejectionPosterior:
    """The MCMC or rejection posterior of an NLE/NRE ``estimator``, as ``info.sampling`` says."""
    sampler = SamplerConfig.of(dict(info.sampling))
    with torch.random.fork_rng(devices=[]):  # sbi's posteriors may draw when built
        if sampler.sample_with == "mcmc":
            return StoreMCMCPosterior(estimator, prior, info, sampler)
        return StoreRejectionPosterior(estimator, prior, info)
