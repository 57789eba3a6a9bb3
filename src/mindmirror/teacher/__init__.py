"""The teacher stage: prompts, the request engine, backends, and record generation."""
