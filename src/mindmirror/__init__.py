"""mindmirror: distil a teacher LLM's reasoning and its self-evaluation into a small student."""

__version__ = "0.1.0"
