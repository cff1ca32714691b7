//! W3: the round trip of a steal between two in-process peers against the raw TCP round
//! trip on the same loopback, in the same run.

use std::time::Duration;

use peer_net::Peer;
use peer_workloads::bench_tasks::SleepMsTask;

use super::children::{loopback, wait_for_peers};
use super::measure::tcp_round_trips;
use super::report::{Obj, Out, Row, micros, micros_text};

pub(super) fn run(out: Out, tasks: u64, pings: u64) -> anyhow::Result<()> {
    let tcp = tcp_round_trips(pings)?;
    let base = loopback()?.workers(1);
    let victim = Peer::join(base.clone())?;
    let thief = Peer::join(base.bootstrap(victim.addresses()[0].clone()))?;
    wait_for_peers(&victim, 1)?;
    let futures = victim.map_named(SleepMsTask, (0..tasks).map(|_| (1,)));
    victim.gather(futures)?;
    let steals = thief.status()?.stats.steal_round_trip;
    let tcp_p50 = Duration::from_nanos(tcp.value_at_quantile(0.5));
    let tcp_p99 = Duration::from_nanos(tcp.value_at_quantile(0.99));
    let tcp_max = Duration::from_nanos(tcp.max());
    let over = |steal: Duration, tcp: Duration| steal.as_secs_f64() / tcp.as_secs_f64();
    let (p50_over, p99_over) = (over(steals.p50, tcp_p50), over(steals.p99, tcp_p99));
    let quantiles = |p50: Duration, p99: Duration, max: Duration, count: u64| {
        Obj::default()
            .num("p50", micros(p50), 1)
            .num("p99", micros(p99), 1)
            .num("max", micros(max), 1)
            .int("count", count)
    };
    let json = Obj::default()
        .str("workload", "W3")
        .obj(
            "tcp_rtt_us",
            quantiles(tcp_p50, tcp_p99, tcp_max, tcp.len()),
        )
        .obj(
            "steal_rtt_us",
            quantiles(steals.p50, steals.p99, steals.max, steals.count),
        )
        .obj(
            "steal_over_tcp",
            Obj::default()
                .num("p50", p50_over, 2)
                .num("p99", p99_over, 2),
        );
    // docs/workloads.md: p50 ≤ 1.5 raw round trips, p99 ≤ 1 ms.
    out.emit(
        &format!(
            "W3 steal round trip: {} steals of 1 ms tasks, against {} raw TCP round trips \
             on the same loopback",
            steals.count,
            tcp.len()
        ),
        &[
            Row::new("steal round trip p50", micros_text(steals.p50))
                .anchor(format!("TCP p50 {}", micros_text(tcp_p50)), p50_over)
                .target("≤ 1.5 × TCP", Some(p50_over <= 1.5)),
            Row::new("steal round trip p99", micros_text(steals.p99))
                .anchor(format!("TCP p99 {}", micros_text(tcp_p99)), p99_over)
                .target("≤ 1 ms", Some(steals.p99 <= Duration::from_millis(1))),
            Row::new("steal round trip max", micros_text(steals.max)).anchor(
                format!("TCP max {}", micros_text(tcp_max)),
                over(steals.max, tcp_max),
            ),
        ],
        &json,
    );
    Ok(())
}
