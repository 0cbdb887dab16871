//! Static deltas: planning, writing, applying (not implemented yet).
