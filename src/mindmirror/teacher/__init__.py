"""The teacher stage: prompts, backends, and record generation (the request engine they use
is `mindmirror.requests`)."""
