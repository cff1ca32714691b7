#[peer_core::task]
fn name() -> &'static str {
    "x"
}

fn main() {}
