"""The sound classifier: trained with Keras, served with LiteRT."""

from micmon.model.model import Model

__all__ = ["Model"]
