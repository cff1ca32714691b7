#[peer_core::task]
fn push(count: u8, items: &mut Vec<u8>) {
    items.push(count);
}

fn main() {}
