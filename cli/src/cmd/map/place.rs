//! Where a command runs: the submitter's working directory (or `--workdir`) and the
//! environment variables `--env` names, resolved here before the commands leave.

use std::path::PathBuf;

use anyhow::Context;

use super::usage;

/// Where the commands run: `--env` and `--workdir`, shared by `peer submit` and `peer map`.
#[derive(Debug, clap::Args)]
pub(super) struct PlaceArgs {
    /// Set NAME for the command: to its value here, or to VALUE. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub(super) env: Vec<String>,
    /// The directory the command runs in, on the peer that runs it (relative: to this
    /// directory) [default: this directory].
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
}

/// What `PlaceArgs` resolve to here, before the commands leave.
#[derive(Debug, PartialEq)]
pub(super) struct Place {
    pub(super) env: Vec<(String, String)>,
    pub(super) workdir: PathBuf,
}

impl PlaceArgs {
    /// The environment and the absolute working directory; a usage error for `--env NAME`
    /// with NAME not set (or not UTF-8) here.
    pub(super) fn resolve(&self) -> anyhow::Result<Place> {
        let here =
            std::env::current_dir().context("cannot read this process's working directory")?;
        let env = self
            .env
            .iter()
            .map(|arg| resolve_env(arg, |name| std::env::var(name)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| usage(&e))?;
        let workdir = match &self.workdir {
            Some(dir) => here.join(dir),
            None => here,
        };
        Ok(Place { env, workdir })
    }
}

/// One `--env` argument: `NAME=VALUE`, or `NAME` with its value from `lookup`.
pub(super) fn resolve_env(
    arg: &str,
    lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
) -> Result<(String, String), String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (arg, None),
    };
    if name.is_empty() || name.contains('\0') {
        return Err(format!("--env {arg:?}: not a variable name"));
    }
    let value = match value {
        Some(value) => value,
        None => lookup(name).map_err(|e| match e {
            std::env::VarError::NotPresent => {
                format!("--env {name}: {name} is not set here; give --env {name}=VALUE to set it")
            }
            std::env::VarError::NotUnicode(_) => {
                format!("--env {name}: the value of {name} here is not UTF-8")
            }
        })?,
    };
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_passed_on_or_set_and_an_unset_name_is_refused() {
        let lookup = |name: &str| match name {
            "HERE" => Ok("value here".to_string()),
            _ => Err(std::env::VarError::NotPresent),
        };
        let pair = |n: &str, v: &str| Ok((n.to_string(), v.to_string()));
        assert_eq!(resolve_env("HERE", lookup), pair("HERE", "value here"));
        assert_eq!(resolve_env("X=a=b", lookup), pair("X", "a=b"));
        assert_eq!(resolve_env("X=", lookup), pair("X", ""));
        let error = resolve_env("GONE", lookup).unwrap_err();
        assert!(error.contains("GONE is not set here"), "{error}");
        assert!(resolve_env("=v", lookup).is_err());
    }
}
