"""lwgan-study: run, track and report ablation studies of the Liquid Warping GAN."""

__version__ = "0.1.0"
