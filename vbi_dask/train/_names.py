"""The names of the training methods and of the samplers of their posteriors, declared
once (torch-free: the command line's parsers read them)."""

__all__ = ["METHODS", "SAMPLERS"]

# what the estimator learns: the posterior (NPE; SNPE-C's atomic loss), the likelihood
# (NLE) or the likelihood-to-evidence ratio (NRE)
METHODS = ("npe", "snpe-c", "nle", "nre")
# how an NLE or NRE posterior samples
SAMPLERS = ("mcmc", "rejection")
