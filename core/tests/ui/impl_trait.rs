#[peer_core::task]
fn show(label: String, value: impl std::fmt::Display) -> String {
    format!("{label}: {value}")
}

fn main() {}
