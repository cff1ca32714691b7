//! AFL++ target: `bash fuzz/run.sh SECONDS request`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        peer_fuzz::round_trip::<peer_fuzz::wire::Request>(data);
    });
}
