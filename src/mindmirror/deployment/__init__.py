"""Deployment of a trained student: an OpenAI-compatible HTTP API over it (``serve``, guarded
by ``serve_auth``) and its export as a Hugging Face folder, a GGUF file and an Ollama model
(``export``, ``export_gguf``)."""
