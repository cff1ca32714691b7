//! Whether a peer would be open: no swarm key, yet reachable from other machines (an
//! address other than loopback, or mDNS). `peer join` and the one-shot commands refuse such
//! a peer (exit 2) unless `--insecure-open` asks for it, and then warn what anyone who
//! reaches it may do.

use peer_net::Config;

use super::Exit;

/// Exit code of a refused open peer: a usage error, as clap uses for bad flags.
const USAGE: u8 = 2;

/// What makes `config` open, e.g. `listening on /ip4/0.0.0.0/tcp/0 and mDNS on`; `None`
/// if it has a swarm key or stays on loopback.
pub(crate) fn exposure(config: &Config) -> Option<String> {
    if !config.is_open() {
        return None;
    }
    let addrs: Vec<String> = config
        .listen_addrs()
        .iter()
        // peer_net's own judgement of each address: open on its own, without a key.
        .filter(|a| Config::new().listen((*a).clone()).mdns(false).is_open())
        .map(ToString::to_string)
        .collect();
    let mut what = Vec::new();
    if !addrs.is_empty() {
        what.push(format!("listening on {}", addrs.join(", ")));
    }
    if config.mdns_on() {
        what.push("mDNS on".to_string());
    }
    Some(what.join(" and "))
}

/// Refuses (exit 2) a peer that would be open without `insecure_open`; with it, warns on
/// stderr what anyone who reaches the peer may do. `private` names the flags that make the
/// swarm private instead; `runs` says which tasks this peer runs, for the warning.
pub(crate) fn check(
    config: &Config,
    insecure_open: bool,
    private: &str,
    runs: &str,
) -> anyhow::Result<()> {
    let Some(what) = exposure(config) else {
        return Ok(());
    };
    if !insecure_open {
        return Err(Exit {
            code: USAGE,
            message: format!(
                "refusing to start without a swarm key while {what}: anyone who reaches this \
                 peer could join the swarm and run tasks on it. Give {private} for a private \
                 swarm, or --insecure-open (PEER_INSECURE_OPEN) to accept an open one"
            ),
        }
        .into());
    }
    super::say(format_args!(
        "warning: --insecure-open: no swarm key while {what}: anyone who reaches this \
         peer may join the swarm, submit tasks, run {runs}, use and alter every named \
         primitive (locks, semaphores, queues, variables, events, topics) and read every \
         published value"
    ));
    Ok(())
}

/// Starts the peer: `peer_net::Error::Open` (should the checks above ever miss a case) is
/// a usage error, any other failure "cannot {what}" (exit 3).
pub(crate) fn join(config: Config, what: &str) -> anyhow::Result<peer_net::Peer> {
    peer_net::Peer::join(config).map_err(|error| {
        let (code, message) = match error {
            peer_net::Error::Open(_) => (USAGE, format!("{error} (--insecure-open)")),
            _ => (Exit::CANNOT_JOIN, format!("cannot {what}: {error}")),
        };
        Exit { code, message }.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(addr: &str) -> Config {
        Config::new().listen(addr.parse().unwrap()).mdns(false)
    }

    #[test]
    fn only_a_keyless_peer_reachable_from_elsewhere_is_open() {
        assert_eq!(exposure(&Config::new()), None);
        assert_eq!(exposure(&listen("/ip4/127.0.0.1/tcp/0")), None);
        assert_eq!(
            exposure(&listen("/ip4/0.0.0.0/tcp/4001")).as_deref(),
            Some("listening on /ip4/0.0.0.0/tcp/4001")
        );
        let both = listen("/ip4/127.0.0.1/tcp/0").listen("/ip6/::/tcp/0".parse().unwrap());
        assert_eq!(
            exposure(&both.mdns(true)).as_deref(),
            Some("listening on /ip6/::/tcp/0 and mDNS on")
        );
        let keyed = listen("/ip4/0.0.0.0/tcp/0").swarm_key(peer_net::SwarmKey::from_bytes([1; 32]));
        assert_eq!(exposure(&keyed), None);
    }

    #[test]
    fn an_open_peer_is_refused_with_exit_2_unless_asked_for() {
        let open = listen("/ip4/0.0.0.0/tcp/0");
        let error = check(&open, false, "--swarm-key FILE", "tasks").unwrap_err();
        let exit = error.downcast_ref::<Exit>().unwrap();
        assert_eq!(exit.code, 2);
        assert!(exit.message.contains("--insecure-open"), "{}", exit.message);
        assert!(
            exit.message.contains("--swarm-key FILE"),
            "{}",
            exit.message
        );
        assert!(check(&open, true, "--swarm-key FILE", "tasks").is_ok());
        assert!(check(&Config::new(), false, "--swarm-key FILE", "tasks").is_ok());
    }
}
