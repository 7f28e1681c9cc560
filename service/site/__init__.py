"""Pages for people and tools: the playground at /, the API docs at /docs, /openapi.json."""
