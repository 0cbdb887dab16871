//! Importing one RPM payload straight into OSTree objects (placeholder).
