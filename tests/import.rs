//! RPM import integration tests.

mod util {
    pub use arbor_tests::*;
}
