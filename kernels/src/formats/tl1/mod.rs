//! tl1: in progress.
