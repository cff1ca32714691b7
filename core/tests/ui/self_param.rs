struct Model;

impl Model {
    #[peer_core::task]
    fn score(&self, x: f64) -> f64 {
        x
    }
}

fn main() {}
