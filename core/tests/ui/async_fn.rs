#[peer_core::task]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
