"""The post-training command-line tools: merge_adapter, create_vllm_compatible_adapter, generate, replace_tokens."""
