//! Compose stage: treefile parsing, resolution, fetch, import, assembly (not implemented yet).
