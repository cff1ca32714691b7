//! Who a peer is and which swarm it belongs to: its identity file (kept across restarts,
//! locked while it runs) and its swarm key (given, or made by `--new-swarm` beside the
//! identity), and the state directory both live in.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use peer_net::{Identity, SwarmKey};

use super::super::Exit;
use super::super::keygen::{IdentityError, load_identity, read_swarm_key, write_private};
use super::settings::{IdentitySource, Settings, usage};

/// The swarm key in use, where it is, and how it came to be there.
pub(super) struct Key {
    pub(super) key: SwarmKey,
    pub(super) path: PathBuf,
    pub(super) note: &'static str,
}

/// The key of `--swarm-key`, or of `--new-swarm` (made in the state directory unless an
/// earlier `--new-swarm` made it), or none.
pub(super) fn swarm_key(settings: &Settings) -> anyhow::Result<Option<Key>> {
    if let Some(path) = &settings.swarm_key {
        return Ok(Some(Key {
            // A key file that is missing or not a key is a bad flag: a usage error.
            key: read_swarm_key(path).map_err(|e| usage(format!("{e:#}")))?,
            path: path.clone(),
            note: "given",
        }));
    }
    if !settings.new_swarm {
        return Ok(None);
    }
    let dir = state_dir(&settings.identity).ok_or_else(|| {
        usage(
            "--new-swarm: no state directory to keep the key in (no $HOME or \
             $XDG_DATA_HOME); write one with `peer keygen --out FILE` and give --swarm-key FILE"
                .to_string(),
        )
    })?;
    let (path, created) = new_swarm_key(&dir)?;
    let note = if created {
        "created by --new-swarm: a new private swarm"
    } else {
        "made by an earlier --new-swarm, kept: the same swarm as before"
    };
    Ok(Some(Key {
        key: read_swarm_key(&path)?,
        path,
        note,
    }))
}

/// The directory of the identity file, where `--new-swarm` keeps the swarm key: the default
/// one's for `--ephemeral` (None without a home directory).
fn state_dir(identity: &IdentitySource) -> Option<PathBuf> {
    let file = match identity {
        IdentitySource::Given(path) => Some(path.clone()),
        IdentitySource::Default(path) => path.clone(),
        IdentitySource::Ephemeral => default_identity_path(),
    }?;
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
        _ => Some(PathBuf::from(".")),
    }
}

/// `dir/swarm.key`, written with a new key (mode 0600, in a directory of mode 0700 if it
/// has to be made) unless it exists; says whether it was made now.
fn new_swarm_key(dir: &Path) -> anyhow::Result<(PathBuf, bool)> {
    use std::os::unix::fs::DirBuilderExt;
    let path = dir.join("swarm.key");
    if path.exists() {
        return Ok((path, false));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let key = SwarmKey::generate().context("generating a swarm key")?;
    match write_private(&path, format!("{key}\n").as_bytes(), false) {
        Ok(()) => Ok((path, true)),
        // Another peer made it first: the same swarm.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((path, false)),
        Err(e) => Err(anyhow::Error::from(e).context(format!("writing {}", path.display()))),
    }
}

/// `$XDG_DATA_HOME/peer/identity`, or `~/.local/share/peer/identity`.
pub(super) fn default_identity_path() -> Option<PathBuf> {
    Some(data_dir()?.join("identity"))
}

/// Where `peer` keeps its state by default: `$XDG_DATA_HOME/peer`, or
/// `~/.local/share/peer` (None without a home directory).
pub(crate) fn data_dir() -> Option<PathBuf> {
    let nonempty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    let data = std::env::var_os("XDG_DATA_HOME")
        .and_then(nonempty)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(nonempty)
                .map(|home| home.join(".local/share"))
        })?;
    Some(data.join("peer"))
}

/// The identity to join with, a line saying where it came from, and the locked file that
/// stops a second peer on this machine from using the same one.
pub(super) fn identity(
    source: &IdentitySource,
) -> anyhow::Result<(Identity, String, Option<File>)> {
    let fresh = |why: &str| (Identity::generate(), why.to_string(), None);
    match source {
        IdentitySource::Ephemeral => Ok(fresh("new for this run (--ephemeral)")),
        IdentitySource::Given(path) => {
            let (identity, lock, created) = load_identity(path).map_err(|e| match e {
                IdentityError::InUse => anyhow::Error::from(Exit {
                    code: Exit::FAILED,
                    message: format!(
                        "the identity {} is in use by another peer on this machine; give \
                         each peer its own --identity FILE",
                        path.display()
                    ),
                }),
                IdentityError::Other(e) => e,
            })?;
            Ok((identity, identity_note(path, created), Some(lock)))
        }
        IdentitySource::Default(None) => {
            super::super::say(format_args!(
                "no $HOME or $XDG_DATA_HOME to keep an identity in; using a new one \
                 for this run (--identity FILE keeps one)"
            ));
            Ok(fresh("new for this run (no home directory to keep one in)"))
        }
        IdentitySource::Default(Some(path)) => match load_identity(path) {
            Ok((identity, lock, created)) => {
                Ok((identity, identity_note(path, created), Some(lock)))
            }
            // Several peers on one machine (tests, a laptop): the first keeps the
            // identity, the others run with new ones.
            Err(IdentityError::InUse) => Ok(fresh(
                "new for this run (the default identity is in use by another peer here; \
                 --identity FILE keeps one per peer)",
            )),
            Err(IdentityError::Other(e)) => {
                super::super::say(format_args!(
                    "cannot keep an identity in {}: {e:#}; using a new one for this run",
                    path.display()
                ));
                Ok(fresh("new for this run"))
            }
        },
    }
}

fn identity_note(path: &Path, created: bool) -> String {
    let how = if created {
        "created"
    } else {
        "kept across restarts"
    };
    format!("{} ({how})", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_swarm_keeps_its_key_beside_the_identity_and_never_replaces_it() {
        let dir = std::env::temp_dir().join(format!("peer-join-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state");
        let identity = IdentitySource::Given(state.join("identity"));
        assert_eq!(state_dir(&identity), Some(state.clone()));
        assert_eq!(
            state_dir(&IdentitySource::Given("identity".into())),
            Some(PathBuf::from("."))
        );
        let (path, created) = new_swarm_key(&state).unwrap();
        assert!(created);
        assert_eq!(path, state.join("swarm.key"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&state), 0o700);
        let first = std::fs::read_to_string(&path).unwrap();
        first.parse::<SwarmKey>().unwrap();
        let (again, created) = new_swarm_key(&state).unwrap();
        assert!(!created);
        assert_eq!(again, path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
