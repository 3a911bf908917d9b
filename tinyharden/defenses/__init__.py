"""defenses (imports TensorFlow)."""
import tinyharden._tf  # noqa: F401  - must precede any QKeras import
