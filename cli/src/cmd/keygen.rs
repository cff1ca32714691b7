//! `peer keygen`: writes a new swarm key file, or a peer identity file; and how `peer join`
//! reads them back.
//!
//! Keys only ever live in files created with mode 0600: a swarm key is never printed and
//! never taken on a command line (where `ps` and shell history would show it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use peer_net::{Identity, SwarmKey};

use super::Exit;

/// Options of `peer keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write it [default: swarm.key, or identity with --identity].
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace FILE if it exists (peers still using an old key can then no longer connect
    /// to peers using the new one; a peer with a new identity has a new peer id).
    #[arg(long)]
    force: bool,
    /// Write a peer identity for `peer join --identity FILE` instead, and print its peer id:
    /// the `/p2p/<id>` of a bootstrap address known before the peer first starts.
    #[arg(long)]
    identity: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (what, bytes, peer_id) = if args.identity {
        let identity = Identity::generate();
        let bytes = identity.to_bytes().context("encoding the identity")?;
        ("peer identity", bytes, Some(identity.peer_id()))
    } else {
        let key = SwarmKey::generate().context("generating a swarm key")?;
        ("swarm key", format!("{key}\n").into_bytes(), None)
    };
    let default = if args.identity {
        "identity"
    } else {
        "swarm.key"
    };
    let out = args.out.unwrap_or_else(|| PathBuf::from(default));
    match write_private(&out, &bytes, args.force) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Exit {
                code: Exit::FAILED,
                message: format!(
                    "{} already exists; pass --force to replace it ({})",
                    out.display(),
                    match peer_id {
                        Some(_) => "a peer that used it would come back with a new peer id",
                        None => {
                            "peers still using the old key will not connect to peers using \
                             the new one"
                        }
                    }
                ),
            }
            .into());
        }
        Err(e) => {
            return Err(e).with_context(|| format!("writing {}", out.display()));
        }
    }
    let out = out.display();
    println!("wrote a new {what} to {out} (mode 0600)");
    match peer_id {
        Some(id) => {
            println!("peer id {id}");
            println!(
                "a peer started with it is reachable at /ip4/<its address>/tcp/<port>/p2p/{id}:"
            );
            println!("  peer join --identity {out} --listen /ip4/0.0.0.0/tcp/<port>");
        }
        None => {
            println!(
                "copy it to every machine of the swarm (it is a secret), then start each peer with:"
            );
            println!("  peer join --swarm-key {out}");
            println!("only peers with the same key can connect to each other");
        }
    }
    Ok(())
}

/// Writes `bytes` to a file at `path` that is created with mode 0600 (never widened, then
/// narrowed) and never seen half-written: the bytes go to a temporary file beside it, which
/// is then linked into place (failing with `AlreadyExists` if `path` exists) or, with
/// `replace`, renamed over it.
pub(crate) fn write_private(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file name", path.display()),
        )
    })?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of a dead process that had our pid.
    let _ = fs::remove_file(&tmp);
    let result = create_private(&tmp, bytes).and_then(|()| {
        if replace {
            fs::rename(&tmp, path)
        } else {
            match fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    // A file system without hard links: create the file in place.
                    create_private(path, bytes)
                }
                other => other,
            }
        }
    });
    let _ = fs::remove_file(&tmp);
    result
}

/// Creates a new file with mode 0600 holding `bytes`, synced to disk.
fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Why [`load_identity`] failed.
pub(crate) enum IdentityError {
    /// Another process holds the file's lock.
    InUse,
    Other(anyhow::Error),
}

impl From<anyhow::Error> for IdentityError {
    fn from(e: anyhow::Error) -> Self {
        IdentityError::Other(e)
    }
}

/// Reads the identity in `path`, creating it (mode 0600, in a directory of mode 0700) if it
/// is missing, and locks the file; says whether it created it.
pub(crate) fn load_identity(path: &Path) -> Result<(Identity, File, bool), IdentityError> {
    let name = path.display();
    let mut created = false;
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = Identity::generate()
            .to_bytes()
            .context("encoding a new identity")?;
        match write_private(path, &bytes, false) {
            Ok(()) => created = true,
            // Another peer created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("creating {name}"))
                    .into());
            }
        }
    }
    let mut file = File::open(path).with_context(|| format!("opening {name}"))?;
    match try_lock(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(IdentityError::InUse),
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context(format!("locking {name}"))
                .into());
        }
    }
    warn_if_readable(&file, path);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {name}"))?;
    let identity =
        Identity::from_bytes(&bytes).with_context(|| format!("{name} is not a peer identity"))?;
    Ok((identity, file, created))
}

/// Takes an exclusive `flock` on the file without waiting (`WouldBlock` if another process
/// holds it); the kernel releases it when the process ends, however it ends. (`File::try_lock`
/// once the MSRV reaches 1.89.)
fn try_lock(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) only reads its two integer arguments; the descriptor is open for the
    // whole call because `file` is borrowed.
    let done = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match done {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Reads a swarm key file.
pub(crate) fn read_swarm_key(path: &Path) -> anyhow::Result<SwarmKey> {
    let name = path.display();
    let mut file = File::open(path).with_context(|| format!("reading the swarm key {name}"))?;
    warn_if_readable(&file, path);
    let mut text = String::new();
    file.read_to_string(&mut text)
        .with_context(|| format!("reading the swarm key {name}"))?;
    text.parse::<SwarmKey>()
        .with_context(|| format!("{name} is not a swarm key (`peer keygen` writes one)"))
}

/// Warns about a secret that every user may read. (Group access is left alone: a service's
/// group is a common way to hand it a key, Kubernetes' `fsGroup` among them.)
fn warn_if_readable(file: &File, path: &Path) {
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            super::say(format_args!(
                "warning: {} holds a secret but others may read it (mode {mode:04o}); \
                 chmod 600 it",
                path.display()
            ));
        }
    }
}
