//! Publish, mirror and prune integration tests against a real S3 server (garage).

mod util {
    pub use arbor_tests::*;
}
