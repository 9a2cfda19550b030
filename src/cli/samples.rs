//! samples (in progress)
