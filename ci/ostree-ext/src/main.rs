//! The ostree-ext CLI as a standalone binary: a test oracle for arbor's container images
//! (ci/build-ostree-ext.sh builds it; tests find it through `ARBOR_OSTREE_EXT`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ostree_ext::cli::run_from_iter(std::env::args_os()).await
}
