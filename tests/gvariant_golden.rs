//! GVariant golden tests against GLib.
