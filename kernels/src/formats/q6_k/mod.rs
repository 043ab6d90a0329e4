//! q6_k: in progress.
