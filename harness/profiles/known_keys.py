"""The names a profile may use that onnxruntime, not the harness, defines: execution providers, each EP's
provider options (``[ep.options]``) and the session config keys (``[session.config]``).

onnxruntime ignores an option or config key it does not know, so a typo would silently run the default; the
schema checks names against these lists instead. The lists are written from onnxruntime's own headers and
docs (``onnxruntime_session_options_config_keys.h``, each EP's provider-options page) as of onnxruntime 1.2x;
a key onnxruntime adds later is refused until it is added here, with a one-line error that says so.
tests/profiles/test_known_keys.py checks that every name here occurs in the installed onnxruntime library (and in
the installed plugin EP libraries), so none is made up.
"""

from __future__ import annotations

# onnx.reference's evaluator run in a worker of its own (harness.worker.reference): no onnxruntime EP at all.
REFERENCE_EP = "ReferenceEvaluator"

KNOWN_EPS = (
    "CPUExecutionProvider", "OpenVINOExecutionProvider", "WebGpuExecutionProvider",
    "CUDAExecutionProvider", "TensorrtExecutionProvider", REFERENCE_EP,
)

# Provider options per EP. The CPU EP takes none through the Python API (its arena is [session] cpu_arena).
EP_OPTIONS: dict[str, tuple[str, ...]] = {
    "CPUExecutionProvider": (),
    REFERENCE_EP: (),
    "CUDAExecutionProvider": (
        "device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream",
        "cudnn_conv_use_max_workspace", "cudnn_conv1d_pad_to_nc1d", "enable_cuda_graph",
        "enable_skip_layer_norm_strict_mode", "use_tf32", "prefer_nhwc", "use_ep_level_unified_stream",
        "tunable_op_enable", "tunable_op_tuning_enable", "tunable_op_max_tuning_duration_ms", "sdpa_kernel",
        "fuse_conv_bias", "has_user_compute_stream", "user_compute_stream", "gpu_external_alloc",
        "gpu_external_free", "gpu_external_empty_cache",
    ),
    "TensorrtExecutionProvider": (
        "device_id", "has_user_compute_stream", "user_compute_stream", "trt_max_workspace_size",
        "trt_max_partition_iterations", "trt_min_subgraph_size", "trt_fp16_enable", "trt_bf16_enable",
        "trt_int8_enable", "trt_int8_calibration_table_name", "trt_int8_use_native_calibration_table",
        "trt_dla_enable", "trt_dla_core", "trt_dump_subgraphs", "trt_engine_cache_enable", "trt_engine_cache_path",
        "trt_engine_cache_prefix", "trt_engine_decryption_enable", "trt_engine_decryption_lib_path",
        "trt_force_sequential_engine_build", "trt_context_memory_sharing_enable", "trt_layer_norm_fp32_fallback",
        "trt_timing_cache_enable", "trt_timing_cache_path", "trt_force_timing_cache", "trt_detailed_build_log",
        "trt_build_heuristics_enable", "trt_sparsity_enable", "trt_builder_optimization_level",
        "trt_auxiliary_streams", "trt_tactic_sources", "trt_extra_plugin_lib_paths", "trt_profile_min_shapes",
        "trt_profile_max_shapes", "trt_profile_opt_shapes", "trt_cuda_graph_enable", "trt_dump_ep_context_model",
        "trt_ep_context_file_path", "trt_ep_context_embed_mode", "trt_weight_stripped_engine_enable",
        "trt_onnx_model_folder_path", "trt_engine_hw_compatible", "trt_op_types_to_exclude",
    ),
    "OpenVINOExecutionProvider": (
        "device_type", "precision", "num_of_threads", "num_streams", "cache_dir", "load_config",
        "enable_qdq_optimizer", "model_priority", "reshape_input", "layout", "context",
        "enable_opencl_throttling", "device_luid",
    ),
    "WebGpuExecutionProvider": (
        "preferredLayout", "enableGraphCapture", "dawnBackendType", "deviceId", "storageBufferCacheMode",
        "uniformBufferCacheMode", "queryResolveBufferCacheMode", "defaultBufferCacheMode", "validationMode",
        "forceCpuNodeNames", "enablePIXCapture", "preserveDevice", "powerPreference",
    ),
}

# Session config keys (SessionOptions.add_session_config_entry) onnxruntime reads.
SESSION_CONFIG_KEYS = (
    "session.disable_prepacking", "session.use_env_allocators", "session.load_model_format",
    "session.save_model_format", "session.set_denormal_as_zero", "session.disable_quant_qdq",
    "session.disable_double_qdq_remover", "session.enable_quant_qdq_cleanup", "session.disable_aot_function_inlining",
    "session.use_device_allocator_for_initializers", "session.inter_op.allow_spinning",
    "session.intra_op.allow_spinning", "session.use_ort_model_bytes_directly",
    "session.use_ort_model_bytes_for_initializers", "session.qdqisint8allowed", "session.x64quantprecision",
    "session.dynamic_block_base", "session.force_spinning_stop", "session.strict_shape_type_inference",
    "session.allow_released_opsets_only", "session.node_partition_config_file",
    "session.intra_op_thread_affinities", "session.debug_layout_transformation", "session.disable_cpu_ep_fallback",
    "session.optimized_model_external_initializers_file_name",
    "session.optimized_model_external_initializers_min_size_in_bytes",
    "session.save_external_prepacked_constant_initializers", "session.collect_node_memory_stats_to_file",
    "session.resource_cuda_partitioning_settings", "session.qdq_matmulnbits_accuracy_level",
    "session.qdq_matmulnbits_block_size", "session.enable_dq_matmulnbits_fusion", "session.disable_model_compile",
    "session.fail_on_suboptimal_compiled_model", "session.record_ep_graph_assignment_info",
    "session.use_per_session_threads", "session.use_deterministic_compute", "session.prepack.enable_parallel",
    "session.intra_op.spin_duration_us", "session.inter_op.spin_duration_us",
    "optimization.enable_gelu_approximation", "optimization.disable_specified_optimizers",
    "optimization.minimal_build_optimizations", "optimization.enable_cast_chain_elimination",
    "optimization.constant_folding_max_output_size_in_bytes",
    "ep.context_enable", "ep.context_file_path", "ep.context_embed_mode",
    "ep.context_model_external_initializers_file_name",
)
