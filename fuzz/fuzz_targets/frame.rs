//! AFL++ target: `bash fuzz/run.sh SECONDS frame`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        peer_fuzz::frames(data);
    });
}
