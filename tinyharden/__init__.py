"""tinyharden: deeply quantized, adversarially robust tiny networks for microcontrollers.

Importing the package is cheap: TensorFlow is loaded only by the modules that need it
(through `tinyharden._tf`), so `tinyharden --help` stays fast.
"""
__version__ = "0.1.0"
