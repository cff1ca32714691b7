//! AFL++ target: `bash fuzz/run.sh SECONDS job_spec`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        peer_fuzz::round_trip::<peer_fuzz::wire::JobSpec>(data);
    });
}
