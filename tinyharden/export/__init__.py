"""Export of trained (Q)Keras models for microcontrollers.

`tflite` converts to a full-integer int8 flatbuffer through a float twin (`twin`) that
holds the quantized weights; `c_source` writes it as a C array for TensorFlow Lite Micro;
`micro` runs it in the TFLM interpreter (parity, arena size). The export job
(`tinyharden.jobs.export`) does all of it; `tinyharden.attacks.tflite_target` lets
`tinyharden attack` query an exported model.
Import the submodules you need: most of them load TensorFlow.
"""
