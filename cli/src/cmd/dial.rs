//! Why a swarm could not be joined, in the user's words: nothing listens at the address, the
//! peer there is another one than the address names, the peer refused us, the swarm keys
//! differ, or no answer at all. `peer join` and the client commands say it the same way.

use std::time::Duration;

use peer_net::Multiaddr;

/// What the last failed dial says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// No dial has failed.
    Nothing,
    /// Nothing listens there (connection refused): a dead or stopped peer.
    Refused,
    /// The peer there has another peer id than the address names.
    WrongPeer,
    /// A connection opened but the handshake failed: another swarm key (or none).
    Handshake,
    /// The peer closed or denied the connection after it opened.
    Denied,
    /// Anything else (no route, a time-out, ...).
    Other,
}

impl Why {
    /// A few words on what happened, for a peer that keeps trying.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Why::Nothing => "no answer yet",
            Why::Refused => "nothing listens at the bootstrap address (connection refused)",
            Why::WrongPeer => "the peer at the bootstrap address has another peer id",
            Why::Handshake => "the handshake failed: another swarm key (or none)?",
            Why::Denied => "the bootstrap peer refused the connection",
            Why::Other => "no answer from the bootstrap address",
        }
    }

    /// Classifies libp2p's text of a failed dial.
    pub(crate) fn of(error: Option<&str>) -> Why {
        let Some(error) = error else {
            return Why::Nothing;
        };
        let lower = error.to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if has(&["wrong peer", "unexpected peer id", "wrongpeerid"]) {
            Why::WrongPeer
        } else if has(&["connection refused"]) {
            Why::Refused
        } else if has(&["handshake", "pnet", "psk", "maximum frame length"]) {
            // A wrong key garbles the bytes after it, so the handshake that follows fails
            // (multistream-select reads a garbled length: "Maximum frame length exceeded").
            Why::Handshake
        } else if has(&["denied", "reset by peer", "broken pipe"]) {
            Why::Denied
        } else {
            Why::Other
        }
    }
}

/// The message of a failed join to `bootstrap` after `waited`, from the last dial error.
pub(crate) fn cannot_join(
    bootstrap: &[Multiaddr],
    waited: Duration,
    error: Option<&str>,
) -> String {
    let addrs: Vec<String> = bootstrap.iter().map(ToString::to_string).collect();
    let head = if addrs.is_empty() {
        format!(
            "cannot join the swarm: no peer found within {} s",
            waited.as_secs_f64().round()
        )
    } else {
        format!("cannot join the swarm at {}", addrs.join(", "))
    };
    // libp2p's own text, shortened to its last part: the OS error or the reason.
    let detail = error.map(short).unwrap_or_default();
    match Why::of(error) {
        Why::WrongPeer => {
            let other = error
                .and_then(|e| e.split("peer ID ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map_or(String::new(), |id| format!(" ({id})"));
            format!(
                "{head}: the peer listening there has another peer id{other} than the address \
                 names (it restarted with a new identity, or the address is stale); use the \
                 address it prints now"
            )
        }
        Why::Refused => format!(
            "{head}: nothing listens there (connection refused): is the peer still running? \
             `peer status` lists the live ones"
        ),
        Why::Handshake => format!(
            "{head}: a peer listens there but the handshake failed: it has another swarm key \
             (or none); give the swarm's key with --swarm-key FILE"
        ),
        Why::Denied => format!("{head}: the peer there refused the connection ({detail})"),
        Why::Other | Why::Nothing => {
            // A peer with another key (or none) can stall the handshake until libp2p's
            // upgrade time-out, so look for it with a plain TCP connection.
            let probes: Vec<std::io::Result<()>> = bootstrap.iter().filter_map(tcp_probe).collect();
            let secs = waited.as_secs_f64().round();
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            };
            if probes.iter().any(Result::is_ok) {
                format!(
                    "{head}: a peer listens there but the handshake did not finish: does it \
                     use the same swarm key (--swarm-key)?{detail}"
                )
            } else {
                match probes.into_iter().find_map(Result::err) {
                    Some(e) => format!("{head}: no answer within {secs} s ({e})"),
                    None => format!(
                        "{head}: no answer within {secs} s (is a peer running there, and \
                         reachable?){detail}"
                    ),
                }
            }
        }
    }
}

/// The last, most particular part of a libp2p error chain (`Connection refused (os error
/// 111)` rather than the whole `Failed to negotiate transport protocol(s): [(...: : ...)]`).
fn short(error: &str) -> String {
    let last = error
        .rsplit(": ")
        .find(|part| !part.trim().is_empty())
        .unwrap_or(error);
    let mut text = last.trim().to_string();
    // Drop the closing brackets of the parts cut away.
    loop {
        let unbalanced =
            text.ends_with(')') && text.matches(')').count() > text.matches('(').count();
        if !(text.ends_with(']') || unbalanced) {
            return text;
        }
        text.pop();
    }
}

/// Whether a TCP connection to a `/ip4|ip6|dns*/<host>/tcp/<port>/...` address opens
/// within a second (None for other addresses).
fn tcp_probe(addr: &Multiaddr) -> Option<std::io::Result<()>> {
    use std::net::{TcpStream, ToSocketAddrs};
    let text = addr.to_string();
    let parts: Vec<&str> = text.split('/').collect();
    let (host, port) = match parts.as_slice() {
        ["", "ip4" | "dns" | "dns4" | "dns6", host, "tcp", port, ..] => (host.to_string(), port),
        ["", "ip6", host, "tcp", port, ..] => (format!("[{host}]"), port),
        _ => return None,
    };
    let target = match format!("{host}:{port}").to_socket_addrs() {
        Ok(mut addrs) => addrs.next()?,
        Err(e) => return Some(Err(e)),
    };
    Some(TcpStream::connect_timeout(&target, Duration::from_secs(1)).map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_told_apart() {
        let at: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()];
        let wait = Duration::from_secs(2);
        let handshake = "Failed to negotiate transport protocol(s): [(/ip4/127.0.0.1/tcp/1: : \
                         Handshake failed: Connection reset by peer (os error 104))]";
        let m = cannot_join(&at, wait, Some(handshake));
        assert!(m.contains("another swarm key"), "{m}");
        let refused = "Failed to negotiate transport protocol(s): [(/ip4/127.0.0.1/tcp/1: : \
                       Connection refused (os error 111))]";
        let m = cannot_join(&at, wait, Some(refused));
        assert!(
            m.contains("nothing listens") && !m.contains("swarm key"),
            "{m}"
        );
        let wrong = "dialing 12D3KooWA failed: Unexpected peer ID 12D3KooWB at Dialer { .. }.";
        assert_eq!(Why::of(Some(wrong)), Why::WrongPeer);
        let m = cannot_join(&at, wait, Some(wrong));
        assert!(m.contains("another peer id"), "{m}");
        // Port 1 on loopback: nobody listens.
        let m = cannot_join(&at, wait, None);
        assert!(m.contains("no answer") && m.contains("refused"), "{m}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Vec<Multiaddr> = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        let m = cannot_join(&open, wait, None);
        assert!(m.contains("the handshake did not finish"), "{m}");
    }

    #[test]
    fn libp2p_chains_are_shortened_to_their_cause() {
        assert_eq!(
            short(
                "Failed to negotiate transport protocol(s): [(/ip4/1.2.3.4/tcp/1: : Connection refused (os error 111))]"
            ),
            "Connection refused (os error 111)"
        );
    }
}
