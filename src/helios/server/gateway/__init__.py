"""The gateway: OpenAI- and Anthropic-compatible endpoints over the runtime's engine."""
