#[peer_core::task]
fn first<T: Clone>(items: &[T]) -> T {
    items[0].clone()
}

fn main() {}
