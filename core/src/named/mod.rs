//! Named tasks: functions any peer can run by name.
//!
//! Closures cannot cross machines, so a task that may run elsewhere is a plain function
//! registered under a stable name, with `serde` arguments and result encoded by `postcard`.
//! [`#[task]`](crate::task) does the registration:
//!
//! ```
//! use peer_core::{Client, task};
//!
//! #[task]
//! fn score(param: f64, data: &[f64]) -> f64 {
//!     data.iter().map(|x| x * param).sum()
//! }
//!
//! let client = Client::builder().workers(2).build().unwrap();
//! let data = client.submit_local(|| vec![1.0, 2.0, 3.0]);
//! // Arguments are values or futures of earlier tasks, like Dask's submit(score, param, data).
//! let s = client.submit_named(ScoreTask, (0.5, &data));
//! assert_eq!(s.wait(), Ok(&3.0));
//! ```
//!
//! # Writing a task
//!
//! Parameters are taken by value (cloned from the stored argument, so `Clone`) or borrowed:
//! `&T` is lent from a stored `T`, `&str` from a `String` and `&[T]` from a `Vec<T>`, so the
//! caller passes the owned type or a future of it. Up to 12 parameters; group more into a
//! struct. Every parameter's owned type and the result must be [`Portable`] (serde, `Send`,
//! `Sync`).
//!
//! # Giving arguments
//!
//! [`Client::submit_named`](crate::Client::submit_named) takes a tuple with one argument per
//! parameter; each is a value, a `&TaskFuture` of an earlier task, or for a parameter stored
//! as a `Vec<E>` (`&[E]` or `Vec<E>`) the futures of its elements: `&[TaskFuture<E>]` or
//! `&[&TaskFuture<E>]` (or a `&Vec` of either), gathered in order into one `Vec` once all
//! are done (fan-in; each value is cloned into it, so `E: Clone`; if
//! one fails, the task fails naming it). A task of one parameter also takes its argument
//! alone:
//!
//! ```
//! use peer_core::{Client, TaskFuture, task};
//!
//! #[task]
//! fn count(word: &str, lines: &[String]) -> usize {
//!     lines.iter().filter(|line| line.contains(word)).count()
//! }
//!
//! #[task]
//! fn total(parts: &[usize]) -> usize {
//!     parts.iter().sum()
//! }
//!
//! #[task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let client = Client::builder().workers(2).build().unwrap();
//! let lines = client.submit_local(|| vec!["a cat".to_string(), "a dog".to_string()]);
//! let counts: Vec<TaskFuture<usize>> = ["cat", "dog", "a"]
//!     .iter()
//!     .map(|word| client.submit_named(CountTask, (word.to_string(), &lines)))
//!     .collect();
//! let sum = client.submit_named(TotalTask, &counts);        // fan-in, no tuple needed
//! assert_eq!(sum.wait(), Ok(&4));
//!
//! let nine = client.submit_named(SquareTask, 3);            // same as (3,)
//! assert_eq!(client.submit_named(SquareTask, &nine).wait(), Ok(&81));
//! let squares = client.map_named(SquareTask, 1..=3u64);     // one call per item
//! assert_eq!(client.gather(squares), Ok(vec![1, 4, 9]));
//! let retried = client.task().retries(2).submit_named(SquareTask, 4);
//! assert_eq!(retried.wait(), Ok(&16));
//! ```
//!
//! The argument alone and the 1-tuple never both fit: for a task whose one parameter is
//! itself a tuple, `(1, 2)` is that tuple and `((1, 2),)` is the same call written as a
//! 1-tuple. Which form a call uses is the [`form`] the compiler infers.
//!
//! What the attribute generates for `fn score`:
//! - `ScoreTask`, a unit struct implementing [`NamedTask`], whose [`NAME`](NamedTask::NAME) is
//!   the module path and function name (`my_crate::model::score`; override with
//!   `#[task(name = "...")]`, and the struct's name with `handle = ...`) and whose
//!   [`SIGNATURE`](NamedTask::SIGNATURE) spells the parameter and result types; its
//!   [fingerprint](NamedTask::fingerprint) is a hash of both, so two binaries that disagree on
//!   a task's types refuse each other's calls instead of decoding garbage;
//! - a [`Registration`] in the binary-wide [`registry`], built by `inventory` without a
//!   hand-kept list: `registry().get(name)` finds the task by name, with the shim that
//!   decodes the arguments, runs the function and encodes the result (which only the swarm
//!   calls).
//!
//! # Running locally
//!
//! By default a named task submitted in-process calls the function directly with references
//! to its inputs: nothing is encoded where the result never leaves the process. A client built
//! with [`Builder::encode_named_tasks`](crate::Builder::encode_named_tasks) instead runs every
//! named task the way a remote peer will: encode the arguments, look the name up in the
//! registry, check the fingerprint, decode, run, encode the result, decode it — so ordinary
//! tests exercise that path.
//!
//! # The linker pitfall
//!
//! `inventory` registers tasks through static constructors in the object files that define
//! them. If a binary never refers to anything in a crate (or module compiled into a separate
//! codegen unit the linker drops), that crate's tasks are not linked in and the registry does
//! not know them — `registry().get` returns `None` and submitting by name fails with
//! [`TaskError::UnknownTask`](crate::TaskError::UnknownTask). Refer to something from every
//! crate that defines tasks (for example call a `pub fn register() {}` it exports, or use one
//! of its task handles) and check `registry().names()` at start-up.
//!
//! # What cannot be a named task
//!
//! Every peer must agree on one signature, and the inputs are shared, so the attribute
//! refuses, with an error at the offending part: async, generic and `unsafe` functions,
//! `self`, `&mut` and `impl Trait` parameters, more than 12 parameters, a borrowed or
//! `impl Trait` result, and parameter types that are not [`Portable`]
//! (`core/tests/ui/*.stderr` shows each message):
//!
//! ```compile_fail
//! #[peer_core::task]
//! async fn fetch(url: String) -> String { url }
//! ```
//!
//! ```compile_fail
//! #[peer_core::task]
//! fn push(items: &mut Vec<u8>) {}
//! ```

mod args;
pub(crate) mod decoded;
pub(crate) mod given;
pub(crate) mod registry;
pub(crate) mod remote;

pub use args::Args;
pub use given::{Element, IntoArg, IntoArgs, form};
pub use registry::{Registration, Registry, registry};

// The old paths of what moved to `crate::ext`, for `peer-net` until it imports from there
// (issue 20): hidden, and to be removed with their last user.
/// A function registered by name; implemented by [`#[task]`](crate::task).
pub trait NamedTask: Send + Sync + 'static {
    /// The stable name peers use to refer to it.
    const NAME: &'static str;
    /// Its parameter and result types as written, e.g. `fn(f64,&Vec<f64>,) -> f64`.
    const SIGNATURE: &'static str;
    /// The parameter types, stored and encoded as owned values.
    type Args: Args;
    /// The result type.
    type Output: Portable;

    /// Calls the function with references to its arguments.
    fn call(args: <Self::Args as Args>::Refs<'_>) -> Self::Output;

    /// A hash of the name and signature, computed at compile time; callers and runners must
    /// agree on it.
    const FINGERPRINT: u64 = fingerprint(Self::NAME, Self::SIGNATURE);

    /// [`FINGERPRINT`](NamedTask::FINGERPRINT), as a function.
    fn fingerprint() -> u64 {
        Self::FINGERPRINT
    }
}

/// FNV-1a over the name, a zero byte and the signature: stable across builds and platforms.
pub(crate) const fn fingerprint(name: &str, signature: &str) -> u64 {
    crate::hash::Fnv1a::new()
        .update(name.as_bytes())
        .update(&[0])
        .update(signature.as_bytes())
        .finish()
}

/// Calls `f` up to `1 + retries` times until it does not panic: retries for the registry
/// path, whose task body returns its own errors and so cannot use the pool's retrying body.
fn retrying<R>(retries: u32, mut f: impl FnMut() -> R) -> R {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    for _ in 0..retries {
        match catch_unwind(AssertUnwindSafe(&mut f)) {
            Ok(value) => return value,
            // A payload whose drop panics must not escape either.
            Err(payload) => drop(catch_unwind(AssertUnwindSafe(move || drop(payload)))),
        }
    }
    f()
}

/// A type that can be an argument or the result of a named task: it may travel between
/// peers, so it is encoded with `serde`, and tasks on any thread may read it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter or the result of a named task: it must implement serde's `Serialize` and `Deserialize`",
    label = "not serializable",
    note = "arguments and results may travel to other peers; derive `serde::Serialize` and `serde::Deserialize` for it, or use a type that has them"
)]
pub trait Portable: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {}
impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> Portable for T {}

/// Runs `N` the way a remote peer will: encode the arguments, look the name up, check the
/// fingerprint, decode and run through the registry's shim, then decode the result.
pub(crate) fn call_encoded<N: NamedTask>(
    refs: <N::Args as Args>::Refs<'_>,
    task: crate::TaskId,
) -> Result<N::Output, crate::TaskError> {
    use crate::TaskError;
    use registry::CallError;
    let name = || std::sync::Arc::<str>::from(N::NAME);
    let call_error = |error: CallError| {
        let message = error.to_string().into();
        match error {
            CallError::DecodeResult(_) | CallError::EncodeResult(_) => TaskError::BadResult {
                task,
                name: name(),
                message,
            },
            _ => TaskError::BadArguments {
                task,
                name: name(),
                message,
            },
        }
    };
    let encoded = <N::Args as Args>::encode(refs).map_err(call_error)?;
    let registration = registry()
        .get(N::NAME)
        .ok_or_else(|| TaskError::UnknownTask { task, name: name() })?;
    if registration.fingerprint() != N::fingerprint() {
        return Err(TaskError::SignatureMismatch {
            task,
            name: name(),
            expected: N::SIGNATURE.into(),
            found: registration.signature().into(),
        });
    }
    let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let result = registration.call(&slices).map_err(call_error)?;
    postcard::from_bytes(&result).map_err(|e| call_error(CallError::DecodeResult(e.to_string())))
}
