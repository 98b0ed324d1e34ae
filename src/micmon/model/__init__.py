"""The sound classifier: trained with Keras, served with LiteRT."""

from micmon._deps import require_keras
from micmon.model.model import Model
from micmon.model.runtime import runtime_name

__all__ = ["Model", "require_keras", "runtime_name"]
