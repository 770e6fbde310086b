"""LLM generation: engines, OpenAI batch-format shards and the resumable shard runner."""
