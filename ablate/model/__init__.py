"""The models, by `model.kind`: the seed's (lainr: bidirectional-Mamba encoder over patch +
latent tokens, and a locality-biased cross-attention decoder with multi-band Fourier
modulation) and LIIF (liif: the positive control). Both are `ImageModel`s."""

from ablate.model.base import ImageModel
from ablate.model.inr import SRModel, build_model
from ablate.model.liif import LIIF
from ablate.model.scan import BackendUnavailable

__all__ = ["ImageModel", "SRModel", "LIIF", "build_model", "BackendUnavailable"]
