//! Compose integration tests: treefile → resolve → commit, judged by dnf, rpm and ostree.

mod util {
    pub use arbor_tests::*;
}
