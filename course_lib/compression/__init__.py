"""Chapter 08, quantization (양자화): the survey's formula, bits and granularity, calibration, outliers, GPTQ,
and real int8 kernels with measured bytes (survey §6.1).

    >>> from course_lib.compression import fake_quantize, quantize_tensor
    >>> qt = quantize_tensor(weight, bits=4, symmetric=False, granularity="group", group_size=64)
    >>> qt.q, qt.scale, qt.zero              # codes [rows, groups, 64], s and z of each group
    >>> (weight - qt.dequantize()).abs() <= qt.step() / 2     # |x - x_hat| <= 1 / (2s)

Modules, each one idea:

- ``quantization``: ``x_q = clip(round(s x + z), -2^(b-1), 2^(b-1) - 1)`` and ``x_hat = (x_q - z) / s``;
  symmetric and asymmetric (비대칭) scales from the min and max; per-tensor, per-channel and
  per-group granularity (양자화 단위); the checks on bits, groups and non-finite values.
- ``calibration``: activation ranges from world text (min/max, percentile, MSE-optimal
  clipping); weight-only and weight-and-activation (W8A8) fake quantization of a model's
  linear layers (``QuantLinear``).
- ``outliers``: LLM.int8's outlier features (magnitude >= 6.0), what they do to a per-tensor
  grid, and the mixed-precision decomposition that keeps them in float.
- ``gptq``: GPTQ's column-by-column quantization with the inverse Hessian of calibration
  inputs, against round to nearest (RTN).
- ``kernels``: int8 layers that compute in integers (``Int8Linear`` with ``torch._int_mm``;
  ``quantize_dynamic``), the same integer weights and scales in both; int8 and packed int4
  weights on disk.
- ``speed``: measured seconds and bytes: the linear layers of a block, latency per generated
  token, and the disk and resident bytes of each storage format, on a profile's architecture.
- ``study``: the accuracy experiment, held-out perplexity for each ``Setting`` (bits,
  granularity, RTN or GPTQ, W8A8 calibration) against fp32; the ``quantization-study`` artifact
  runs it on ``base`` and ``instruct`` with chapter 05's tasks.

Chapter 09, distillation (지식 증류) and pruning (가지치기) (survey §6.2-6.3):

- ``distillation``: Hinton's loss ``alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE``; the
  ``Distiller`` that makes it the course loop's loss; the teacher's top-k logits cached once;
  sequence-level distillation on the teacher's own answers.
- ``pruning``: unstructured magnitude masks, layer-wise and global (equal to
  ``torch.nn.utils.prune``'s), CSR weights in safetensors, recovery with the masks held.
- ``structured``: heads, FFN neurons and layers scored (first-order Taylor or magnitude) and
  removed, giving a smaller Llama that loads with ``from_pretrained``.
- ``experiments``: the ``kd-students``, ``pruning-sweep`` and ``kd-sequence`` artifacts.
"""

from .calibration import (RANGE_METHODS, SKIP, QuantLinear, activation_range, calibrate, calibration_batches,
                          captured_inputs, check_batches, clip_share, layer_inputs, linear_layers, quantize_linears,
                          quantize_weight, quantize_weights, run_batches, static_error)
from .gptq import gptq_model, gptq_quantize, hessian, inverse_hessian, layer_error
from .kernels import (FORMATS, Int8Linear, course_int8, load_quantized, pack_int4, quantized_state, save_quantized,
                      tensor_bytes, torch_int8, torch_int8_qconfig, torch_weight, unpack_int4)
from .outliers import THRESHOLD, int8_matmul_decomposed, outlier_damage, outlier_dims, outlier_features, outlier_table, w8a8
from .quantization import (GRANULARITIES, MAX_BITS, MIN_BITS, QuantizedTensor, check_bits, check_finite, code_range,
                           dequantize, fake_quantize, fake_quantize_range, grouped, quantization_error, quantize,
                           quantize_tensor, scale_and_zero)
from .speed import best_seconds, block_linears, random_decoder, resident_bytes, time_generation, time_linears, weight_bytes
from .study import (SETTINGS, Setting, accuracy_study, group_size_for, perplexity_grid, quantized, study_settings,
                    task_settings)
from .distillation import (Distiller, TeacherCache, cache_teacher, check_alpha, check_temperature, check_vocab, kd_loss,
                           new_student, sequence_distill, soft_loss, student_train_config, teacher_answers, train_student)
from .pruning import (SCOPES, apply_masks, check_sparsity, csr_bytes_estimate, dense_bytes, keep_masks, load_sparse,
                      magnitude_mask, magnitude_masks, magnitude_prune, nonzero_parameters, prunable_weights, recover,
                      save_sparse, sparsity_of)
from .structured import (SCORES, check_llama, head_counts, importance, least_important, magnitude_importance,
                         mask_structures, shrink, structured_prune, taylor_importance)
from .experiments import (calibration_blocks, kd_comparison, kd_speed, paired_interval, pruning_sweep,
                          sequence_comparison, temperature_sweep)

__all__ = [
    "RANGE_METHODS", "SKIP", "QuantLinear", "activation_range", "calibrate", "calibration_batches", "captured_inputs",
    "check_batches", "clip_share", "layer_inputs", "linear_layers", "quantize_linears", "quantize_weight",
    "quantize_weights", "run_batches", "static_error",
    "gptq_model", "gptq_quantize", "hessian", "inverse_hessian", "layer_error",
    "FORMATS", "Int8Linear", "course_int8", "load_quantized", "pack_int4", "quantized_state", "save_quantized",
    "tensor_bytes", "torch_int8", "torch_int8_qconfig", "torch_weight", "unpack_int4",
    "THRESHOLD", "int8_matmul_decomposed", "outlier_damage", "outlier_dims", "outlier_features", "outlier_table", "w8a8",
    "GRANULARITIES", "MAX_BITS", "MIN_BITS", "QuantizedTensor", "check_bits", "check_finite", "code_range",
    "dequantize", "fake_quantize", "fake_quantize_range", "grouped", "quantization_error", "quantize",
    "quantize_tensor", "scale_and_zero",
    "best_seconds", "block_linears", "random_decoder", "resident_bytes", "time_generation", "time_linears", "weight_bytes",
    "SETTINGS", "Setting", "accuracy_study", "group_size_for", "perplexity_grid", "quantized", "study_settings",
    "task_settings",
    "Distiller", "TeacherCache", "cache_teacher", "check_alpha", "check_temperature", "check_vocab", "kd_loss",
    "new_student", "sequence_distill", "soft_loss", "student_train_config", "teacher_answers", "train_student",
    "SCOPES", "apply_masks", "check_sparsity", "csr_bytes_estimate", "dense_bytes", "keep_masks", "load_sparse",
    "magnitude_mask", "magnitude_masks", "magnitude_prune", "nonzero_parameters", "prunable_weights", "recover",
    "save_sparse", "sparsity_of",
    "SCORES", "check_llama", "head_counts", "importance", "least_important", "magnitude_importance", "mask_structures",
    "shrink",
    "structured_prune", "taylor_importance",
    "calibration_blocks", "kd_comparison", "kd_speed", "paired_interval", "pruning_sweep", "sequence_comparison",
    "temperature_sweep",
]
