//! `peer status`: what the peers of a swarm are doing.

/// Options of `peer status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("peer status: being written")
}
