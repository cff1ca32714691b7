//! Failure detection among idle `peer join` processes. Nobody has business with anybody,
//! so nobody pings anybody closely: only the loose watch of ring neighbours (a ping every
//! 5 s, suspected after 15 s of silence) can find a hung peer, and notice it is back.

mod common;

use std::time::{Duration, Instant};

use common::join_command;
use peer_testkit::Running;

fn joined(bootstrap: Option<&str>) -> Running {
    Running::spawn(&mut join_command(bootstrap))
}

#[test]
fn a_hung_idle_peer_is_suspected_by_its_ring_neighbours_and_is_back_when_it_resumes() {
    let mut a = joined(None);
    let addr = a.addr();
    let mut b = joined(Some(&addr));
    let mut c = joined(Some(&addr));
    for peer in [&mut a, &mut b, &mut c] {
        peer.wait_for(|l| l == "2 peers connected");
    }
    // With three peers, each one's two ring successors are the other two.
    let stopped = Instant::now();
    c.signal(libc::SIGSTOP);
    a.wait_for(|l| l == "1 peer connected");
    let after = stopped.elapsed();
    b.wait_for(|l| l == "1 peer connected");
    // Its last answer came at most 5 s before the stop: a loose watch waits 15 s from it.
    assert!(
        after >= Duration::from_secs(9),
        "an idle peer is watched loosely, yet it was suspected after {after:?}"
    );
    c.signal(libc::SIGCONT);
    a.wait_for(|l| l == "2 peers connected");
    b.wait_for(|l| l == "2 peers connected");
}
