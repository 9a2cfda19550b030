//! bench (in progress)
/// Bench arguments.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}
/// Runs the bench.
pub async fn run(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
