//! demo (in progress)
/// Demo arguments.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {}
/// Runs the demo.
pub async fn run(_a: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
