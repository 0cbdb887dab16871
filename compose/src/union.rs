//! Union of package trees (placeholder).
