//! `peer submit` and `peer map`: shell commands as tasks across the swarm.

/// Options of `peer submit`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubmitArgs {}

/// Options of `peer map`.
#[derive(Debug, clap::Args)]
pub(crate) struct MapArgs {}

pub(crate) fn submit(_args: SubmitArgs) -> anyhow::Result<()> {
    anyhow::bail!("peer submit: being written")
}

pub(crate) fn run(_args: MapArgs) -> anyhow::Result<()> {
    anyhow::bail!("peer map: being written")
}
