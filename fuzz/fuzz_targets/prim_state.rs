//! AFL++ target: `bash fuzz/run.sh SECONDS prim_state`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        peer_fuzz::round_trip::<peer_fuzz::wire::PrimState>(data);
    });
}
