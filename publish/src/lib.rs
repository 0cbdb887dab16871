//! Publishing to object storage, mirroring, pruning (not implemented yet).
