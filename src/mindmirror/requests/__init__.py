"""The async request engine below both teacher and student: many samples from an
OpenAI-compatible server (or an in-process backend), with concurrency, rate limits, retries, a
SQLite cache that makes every run resumable, and progress. The teacher asks it for CoTs and
evaluations; the student, for its own samples and verdicts through a llama.cpp (or any
OpenAI-compatible) server."""
