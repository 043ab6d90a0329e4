//! tl2: in progress.
