"""Model zoo and model loading (imports TensorFlow)."""
import tinyharden._tf  # noqa: F401  - must precede any QKeras import

from tinyharden.models.loading import load_model, logits_model  # noqa: E402
from tinyharden.models.zoo import build_model  # noqa: E402

__all__ = ["build_model", "load_model", "logits_model"]
