//! Dask-style futures for Rust, on a local work-stealing pool.
//!
//! Submit functions, get [`TaskFuture`]s, pass futures into later tasks to build a graph, and
//! gather the results — the same program later runs across a swarm of machines with
//! `peer-net`. This crate alone needs no network.
//!
//! The seed's nested loop: load each file once, score every parameter against it. Written
//! with named tasks, the same function runs on a swarm when handed a peer's client.
//!
//! ```
//! use peer_core::{Client, task};
//!
//! #[task]
//! fn load(name: &str) -> Vec<f64> { name.bytes().map(f64::from).collect() }
//! #[task]
//! fn score(param: f64, data: &[f64]) -> f64 { data.iter().map(|x| x * param).sum() }
//!
//! fn best(client: &Client) -> f64 {
//!     let mut futures = Vec::new();
//!     for file in ["a.csv", "b.csv"] {
//!         let data = client.submit_named(LoadTask, file.to_string());      // outer loop: load
//!         for param in [0.5, 1.0, 2.0] {
//!             futures.push(client.submit_named(ScoreTask, (param, &data))); // inner loop
//!         }
//!     }
//!     let results = client.gather(futures).unwrap();
//!     results.iter().cloned().fold(f64::MIN, f64::max)
//! }
//!
//! let client = Client::builder().workers(2).build().unwrap();
//! assert!(best(&client) > 0.0);
//! // Closures run in this process, as their names say: `submit_local`, `map_local`.
//! let local = client.submit_local(|| 6 * 7);
//! assert_eq!(local.wait(), Ok(&42));
//! ```

extern crate self as peer_core;

mod cell;
mod client;
mod collect;
mod error;
#[doc(hidden)]
pub mod ext;
mod future;
mod hash;
mod id;
mod inputs;
mod loom;
pub mod named;
mod promise;
pub mod sync;

pub use client::{BuildError, Builder, Client, TaskBuilder};
pub use collect::{AsCompleted, Completion, WaitFor, as_completed, gather, wait, wait_timeout};
pub use error::TaskError;
pub use future::TaskFuture;
pub use id::TaskId;
pub use inputs::{Held, Inputs};
pub use named::NamedTask;
pub use peer_macros::task;
pub use promise::Promise;
pub use sync::{
    Event, Fenced, Lock, Permit, Queue, Semaphore, Subscription, Topic, Variable, Versioned,
};
