//! `peer keygen`: writes a new swarm key file.

/// Options of `peer keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("peer keygen: being written")
}
