//! Peers on 127.0.0.1 for the benchmarks: `peer join` children of this binary, optionally
//! in a network namespace of their own, and how an in-process peer joins them.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use peer_net::{Config, Multiaddr, Peer};

use peer_cli::harness::read_bootstrap_line;

/// `peer join` children of this binary on 127.0.0.1, the first bootstrapping the others;
/// killed when dropped.
pub(crate) struct Children {
    procs: Vec<std::process::Child>,
    /// Per child: the peers it last said it is connected to.
    connected: Vec<Arc<AtomicUsize>>,
    /// The first child's address, to bootstrap from.
    pub(crate) addr: Multiaddr,
}

impl Children {
    /// Starts `n` (at least 1) peers of `workers` workers each.
    pub(crate) fn spawn(n: usize, workers: usize) -> anyhow::Result<Children> {
        Children::spawn_in(n, workers, None)
    }

    /// As [`Children::spawn`]; in the network namespace `netns` if given.
    ///
    /// A child is also killed (`PR_SET_PDEATHSIG`) when the thread that started it ends,
    /// as when this process is killed: start them from a thread that outlives them.
    pub(super) fn spawn_in(
        n: usize,
        workers: usize,
        netns: Option<&Netns>,
    ) -> anyhow::Result<Children> {
        let exe = std::env::current_exe()?;
        let mut children = Children {
            procs: Vec::new(),
            connected: Vec::new(),
            addr: "/ip4/127.0.0.1/tcp/0".parse()?,
        };
        let parent = std::process::id();
        for i in 0..n.max(1) {
            // `ip netns exec` enters the namespace and execs the peer in its own place, so
            // the child's pid is the peer's.
            let mut cmd = match netns {
                Some(netns) => {
                    let mut cmd = Command::new("ip");
                    cmd.args(["netns", "exec", &netns.name]).arg(&exe);
                    cmd
                }
                None => Command::new(&exe),
            };
            cmd.args([
                "join",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
                "--ephemeral",
            ])
            .args(["--workers", &workers.to_string()]);
            if i > 0 {
                cmd.args(["--bootstrap", &children.addr.to_string()]);
            }
            // SAFETY: the closure runs in the forked child before exec and calls only
            // prctl(2), getppid(2) and _exit(2), which are async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // This process ended before the request above: nobody will kill it.
                    if libc::getppid() as u32 != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting a peer process")?;
            let stdout = child.stdout.take();
            children.procs.push(child);
            let connected = Arc::new(AtomicUsize::new(0));
            children.connected.push(Arc::clone(&connected));
            // Relaxed: see `Children::fully_connected`.
            let addr = read_bootstrap_line(stdout, move |n| connected.store(n, Ordering::Relaxed))?;
            if i == 0 {
                children.addr = addr;
            }
        }
        Ok(children)
    }

    /// Their process ids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(std::process::Child::id).collect()
    }

    /// How many children say they are connected to every other child.
    pub(super) fn fully_connected(&self) -> usize {
        let others = self.procs.len().saturating_sub(1);
        self.connected
            .iter()
            // Relaxed: a count read on its own; nothing else is published with it.
            .filter(|c| c.load(Ordering::Relaxed) >= others)
            .count()
    }

    /// Fails if a child has ended.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        for child in &mut self.procs {
            if let Some(status) = child.try_wait()? {
                bail!("peer process {} ended: {status}", child.id());
            }
        }
        Ok(())
    }

    /// Starts a peer of `workers` workers in this process, bootstrapped from the children,
    /// and waits for all of them to connect to it.
    pub(super) fn join(&self, workers: usize) -> anyhow::Result<Peer> {
        self.join_with(loopback()?.workers(workers))
    }

    /// As [`Children::join`], with `config` (its bootstrap address is theirs).
    pub(super) fn join_with(&self, config: Config) -> anyhow::Result<Peer> {
        let client = Peer::join(config.bootstrap(self.addr.clone()))?;
        wait_for_peers(&client, self.procs.len())?;
        Ok(client)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The config of an in-process peer on 127.0.0.1 that finds others only by bootstrap
/// address, as the children do.
pub(super) fn loopback() -> anyhow::Result<Config> {
    Ok(Config::new()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .mdns(false))
}

/// Waits up to 30 s for `n` other peers to connect to `client`; fails if they do not.
pub(super) fn wait_for_peers(client: &Peer, n: usize) -> anyhow::Result<()> {
    if client.wait_for_peers(n, Duration::from_secs(30)) < n {
        bail!("the peers did not connect");
    }
    Ok(())
}

/// A network namespace of this command's own (`ip netns add`), with its loopback up;
/// deleted when dropped.
pub(super) struct Netns {
    name: String,
}

impl Netns {
    /// `peer-w7-<pid>`, or `None` if it cannot be made (not root, no `ip`).
    pub(super) fn create() -> Option<Netns> {
        let name = format!("peer-w7-{}", std::process::id());
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        // Deleted again on the way out if the loopback does not come up.
        let netns = Netns { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]).then_some(netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.name]);
    }
}

/// Runs `ip` with `args`, quietly; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
