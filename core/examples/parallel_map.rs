//! One function over many files, in parallel: the seed's "parallel for loop".
//!
//! ```sh
//! cargo run --release -p peer-core --example parallel_map -- [FILES]
//! ```
//!
//! Writes FILES text files to a temporary directory, counts the words of each with
//! `client.map_local`, and prints the total as the results come in (`as_completed`).

use std::fs;
use std::path::PathBuf;

use peer_core::{Client, as_completed};

/// The per-file work: count whitespace-separated words.
fn process(path: PathBuf) -> (PathBuf, usize) {
    let text = fs::read_to_string(&path).expect("the example's own file is readable");
    let words = text.split_whitespace().count();
    (path, words)
}

fn main() {
    let files: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("peer-parallel-map-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("can create a temporary directory");
    let filenames: Vec<PathBuf> = (0..files)
        .map(|i| {
            let path = dir.join(format!("file-{i:04}.txt"));
            fs::write(&path, "lorem ipsum dolor ".repeat(i + 1)).expect("writable");
            path
        })
        .collect();

    let client = Client::new();
    let futures = client.map_local(filenames, process);
    let mut total = 0;
    for (done, future) in as_completed(futures).enumerate() {
        let (_, words) = future.wait().expect("no task fails");
        total += words;
        if (done + 1) % 25 == 0 || done + 1 == files {
            println!("{} of {files} files done, {total} words so far", done + 1);
        }
    }
    let expected: usize = (1..=files).map(|i| 3 * i).sum();
    assert_eq!(total, expected, "every file counted exactly once");
    println!("total: {total} words in {files} files");
    fs::remove_dir_all(&dir).expect("can remove the temporary directory");
}
