//! Placeholder: multi-process leader election lives here.
