//! q4_k: in progress.
