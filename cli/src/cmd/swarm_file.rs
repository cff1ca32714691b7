//! The swarm file: how a client command finds the swarm without `--bootstrap`, like
//! HyperQueue's server directory or Dask's scheduler file.
//!
//! Each `peer join` adds itself (peer id, addresses, process id, swarm key file) to a JSON
//! file in the state directory (`$XDG_DATA_HOME/peer/swarm.json`, mode 0600) when it starts
//! and removes itself when it leaves. `map`, `submit`, `status`, `jobs`, `cancel` and a
//! user's binary's commands read it when given no `--bootstrap`: the members whose process
//! still runs are the swarm. A peer killed with SIGKILL leaves its entry behind; readers skip
//! it (its process is gone) and the next writer drops it.
//!
//! Writers take an exclusive `flock(2)` on `<file>.lock` (never removed, so two writers
//! always lock the same file), write a new file and rename it over the old one: a reader
//! never sees half a file, and a crash mid-write loses nothing. The file is opened without
//! following a symbolic link, read only if this user owns it and no one else may write it,
//! and at most [`FILE_MAX`] bytes of it; one that does not parse counts as empty.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Members kept at most: the newest win. One machine runs a handful of peers; the bound only
/// keeps a file written by something else from growing without end.
const MEMBERS_MAX: usize = 256;

/// Bytes of the file read at most: [`MEMBERS_MAX`] members take well under this.
const FILE_MAX: u64 = 1 << 20;

/// The file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    members: Vec<Member>,
}

/// One `peer join` of this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Member {
    /// Its peer id.
    pub(crate) peer: String,
    /// Its process id: the entry is live while that process runs.
    pub(crate) pid: u32,
    /// The addresses to bootstrap from, each ending in `/p2p/<peer>`.
    pub(crate) addrs: Vec<String>,
    /// The swarm key file it runs with (absolute), if any. The key itself is never written.
    pub(crate) swarm_key: Option<PathBuf>,
    /// When it joined (Unix seconds): with several swarms on one machine, the newest wins.
    pub(crate) since: u64,
}

/// `PEER_SWARM_FILE`'s default: `$XDG_DATA_HOME/peer/swarm.json` (or under
/// `~/.local/share`), `swarm-<name>.json` for a user's binary built on `peer_cli`, so that
/// its commands find the peers that serve its tasks; None without a home directory.
pub(crate) fn default_path() -> Option<PathBuf> {
    let file = match super::join::program().as_str() {
        "peer" => "swarm.json".to_string(),
        other => format!("swarm-{other}.json"),
    };
    Some(super::join::data_dir()?.join(file))
}

/// This peer's entry in a swarm file, removed when dropped (when `peer join` leaves).
#[derive(Debug)]
pub(crate) struct Registration {
    path: PathBuf,
    peer: String,
    pid: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = update(&self.path, |members| {
            members.retain(|m| !(m.peer == self.peer && m.pid == self.pid));
        });
    }
}

/// Adds `member` to the file at `path` (made, with its directory, if missing), replacing an
/// entry of the same peer id and dropping those of exited processes.
pub(crate) fn register(path: &Path, member: Member) -> anyhow::Result<Registration> {
    let registration = Registration {
        path: path.to_path_buf(),
        peer: member.peer.clone(),
        pid: member.pid,
    };
    update(path, |members| {
        members.retain(|m| m.peer != member.peer);
        members.push(member);
    })
    .with_context(|| format!("cannot write the swarm file {}", path.display()))?;
    Ok(registration)
}

/// The members of the file at `path` whose process still runs, newest first; none if the
/// file is missing, or is not this user's alone, or does not parse (said on stderr).
pub(crate) fn live_members(path: &Path) -> anyhow::Result<Vec<Member>> {
    let mut members = match read(path) {
        Ok(members) => members,
        Err(e) => {
            super::say(format_args!("warning: ignoring the swarm file: {e:#}"));
            Vec::new()
        }
    };
    members.retain(|m| alive(m.pid));
    members.sort_by_key(|m| std::cmp::Reverse(m.since));
    Ok(members)
}

/// The members to join, and how many swarms (swarm key files) the file lists: those with
/// the key file `key` if any has it, else the newest member's swarm.
pub(crate) fn one_swarm(members: &[Member], key: Option<&Path>) -> (Vec<Member>, usize) {
    let mut keys: Vec<&Option<PathBuf>> = members.iter().map(|m| &m.swarm_key).collect();
    keys.sort();
    keys.dedup();
    let wanted = key.map(|k| std::path::absolute(k).unwrap_or_else(|_| k.to_path_buf()));
    let chosen = match wanted.filter(|k| members.iter().any(|m| m.swarm_key.as_ref() == Some(k))) {
        Some(key) => Some(key),
        None => match members.iter().max_by_key(|m| m.since) {
            Some(newest) => newest.swarm_key.clone(),
            None => return (Vec::new(), 0),
        },
    };
    let chosen = (members.iter())
        .filter(|m| m.swarm_key == chosen)
        .cloned()
        .collect();
    (chosen, keys.len())
}

/// Reads, changes and writes the file under an exclusive lock; removes it once empty.
fn update(path: &Path, change: impl FnOnce(&mut Vec<Member>)) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let lock_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(with_suffix(path, ".lock"))?;
    lock(&lock_file, libc::LOCK_EX)?;
    // A file that does not parse (cut by another program) starts over: it only holds hints.
    let mut members = read(path).unwrap_or_default();
    members.retain(|m| alive(m.pid));
    change(&mut members);
    members.sort_by_key(|m| std::cmp::Reverse(m.since));
    members.truncate(MEMBERS_MAX);
    if members.is_empty() {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => return Ok(()),
        }
    }
    let text = serde_json::to_string_pretty(&Contents { members })? + "\n";
    let tmp = with_suffix(path, &format!(".{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(written?)
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The members the file at `path` lists (none if it is missing); an error if it is a
/// symbolic link, not this user's, writable by others, or does not parse.
fn read(path: &Path) -> anyhow::Result<Vec<Member>> {
    use std::os::unix::fs::MetadataExt;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("{}", path.display()))),
    };
    let meta = file.metadata()?;
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "{} is not a file of this user's that only it may write",
            path.display()
        );
    }
    let mut text = String::new();
    file.take(FILE_MAX).read_to_string(&mut text)?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let contents: Contents = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a swarm file", path.display()))?;
    Ok(contents.members)
}

fn lock(file: &File, how: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) only reads its two integer arguments; the descriptor stays open for
    // the call because `file` is borrowed. The lock goes with the descriptor when dropped.
    let done = unsafe { libc::flock(file.as_raw_fd(), how) };
    match done {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether process `pid` runs (ours or another user's).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the process exists.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(peer: &str, pid: u32, since: u64, key: Option<&str>) -> Member {
        Member {
            peer: peer.into(),
            pid,
            addrs: vec![format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}")],
            swarm_key: key.map(PathBuf::from),
            since,
        }
    }

    #[test]
    fn members_come_and_go_and_dead_ones_are_skipped() {
        let dir = std::env::temp_dir().join(format!("peer-swarm-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state").join("swarm.json");
        assert_eq!(
            live_members(&path).unwrap(),
            Vec::new(),
            "no file, no swarm"
        );
        let me = std::process::id();
        let a = register(&path, member("a", me, 1, None)).unwrap();
        let b = register(&path, member("b", me, 2, None)).unwrap();
        // A SIGKILLed peer's leftover: a process id that runs nothing.
        let dead = member("dead", i32::MAX as u32 - 1, 3, None);
        update(&path, |m| m.push(dead.clone())).unwrap();
        let peers = |p: &Path| -> Vec<String> {
            live_members(p)
                .unwrap()
                .into_iter()
                .map(|m| m.peer)
                .collect()
        };
        assert_eq!(peers(&path), ["b", "a"], "newest first, the dead skipped");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(b);
        assert_eq!(peers(&path), ["a"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("dead"), "a writer drops the dead: {text}");
        drop(a);
        assert!(!path.exists(), "the last one out removes the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_link_a_shared_file_or_garbage_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("peer-swarm-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("swarm.json");
        let me = std::process::id();
        update(&path, |m| m.push(member("a", me, 1, None))).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        // Writable by others: not trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(read(&path).is_err());
        assert!(live_members(&path).unwrap().is_empty());
        // A symbolic link: not followed, and a writer does not write through it.
        std::fs::remove_file(&path).unwrap();
        let target = dir.join("elsewhere");
        std::fs::write(&target, "precious").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(read(&path).is_err());
        let _ = update(&path, |m| m.push(member("b", me, 2, None)));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        // Garbage: empty, for a reader and a writer alike.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "{ not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(live_members(&path).unwrap().is_empty());
        update(&path, |m| m.push(member("c", me, 3, None))).unwrap();
        assert_eq!(read(&path).unwrap()[0].peer, "c");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_newest_members_swarm_wins_unless_a_key_picks_another() {
        let members = [
            member("old", 1, 1, Some("/k1")),
            member("new", 2, 5, Some("/k2")),
            member("same", 3, 2, Some("/k2")),
        ];
        let peers = |(chosen, swarms): (Vec<Member>, usize)| {
            (
                chosen.into_iter().map(|m| m.peer).collect::<Vec<_>>(),
                swarms,
            )
        };
        assert_eq!(
            peers(one_swarm(&members, None)),
            (vec!["new".into(), "same".into()], 2)
        );
        // The key asked for picks its swarm, even an older one.
        let old = Path::new("/k1");
        assert_eq!(
            peers(one_swarm(&members, Some(old))),
            (vec!["old".into()], 2)
        );
        assert_eq!(peers(one_swarm(&[], None)), (Vec::new(), 0));
    }
}
