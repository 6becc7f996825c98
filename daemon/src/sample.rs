//! Deterministic synthetic posts in the X API v2 filtered-stream shape, for demos and tests.
