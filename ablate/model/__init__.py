"""The seed's model: bidirectional-Mamba encoder over patch + latent tokens, and a
locality-biased cross-attention decoder with multi-band Fourier modulation."""

from ablate.model.inr import SRModel, build_model
from ablate.model.scan import BackendUnavailable

__all__ = ["SRModel", "build_model", "BackendUnavailable"]
