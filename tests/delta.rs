//! Static delta integration tests against the real ostree client.

mod util {
    pub use arbor_tests::*;
}
