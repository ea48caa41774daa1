"""LWGAN networks (3-stream generator with the Liquid Warping Block, PatchGAN discriminator),
frozen loss backbones, the eight losses and the GAN objective."""

from lwgan.models.backbones import BackboneStatus, SphereFace20, VGG19Features, build_sphereface, build_vgg19
from lwgan.models.discriminator import Discriminator
from lwgan.models.generator import Generator, GeneratorOutput
from lwgan.models.layers import apply_spectral_norm, count_parameters, init_weights
from lwgan.models.objective import D_METRICS, G_METRICS, Objective

__all__ = [
    "BackboneStatus",
    "D_METRICS",
    "G_METRICS",
    "Objective",
    "Discriminator",
    "Generator",
    "GeneratorOutput",
    "SphereFace20",
    "VGG19Features",
    "apply_spectral_norm",
    "build_sphereface",
    "build_vgg19",
    "count_parameters",
    "init_weights",
]
