"""Inference objects: trained models rebuilt from a checkpoint with the core alone, separate from training.

In the style of vocos' ``pretrained.py`` and EDM's free ``edm_sampler(net, ...)``: each direction has
an ``nn.Module`` that holds only what inference needs (the trained networks, the sampler, the data
geometry) and a ``from_checkpoint(path)`` that reads the file safely (``weights_only=True``), rebuilds
the networks from the configuration the checkpoint carries (core classes only) and loads the weights.
The LightningModules build the same objects from their live networks (``to_inference()``), so
validation, the ``synthesize-*`` tools, the reproduction, the bench and the tests share one code path.

    from articulate.inference import load_predictor
    synth = load_predictor("model.ckpt")            # the right class for the checkpoint
    Mri2AudioSynthesizer.from_checkpoint("model.ckpt")   # or a given class, refusing other kinds
"""

from articulate.inference.base import Predictor, load_predictor

__all__ = ["Predictor", "load_predictor"]
