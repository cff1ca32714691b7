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
//! fn score(param: f64, data: &Vec<f64>) -> f64 {
//!     data.iter().map(|x| x * param).sum()
//! }
//!
//! let client = Client::builder().workers(2).build().unwrap();
//! let data = client.submit(|| vec![1.0, 2.0, 3.0]);
//! // Arguments are values or futures of earlier tasks, like Dask's submit(score, param, data).
//! let s = client.submit_named(ScoreTask, (0.5, &data));
//! assert_eq!(s.wait(), Ok(&3.0));
//! ```
//!
//! What the attribute generates for `fn score`:
//! - `ScoreTask`, a unit struct implementing [`NamedTask`], whose [`NAME`](NamedTask::NAME) is
//!   the module path and function name (`my_crate::model::score`; override with
//!   `#[task(name = "...")]`, and the struct's name with `handle = ...`) and whose
//!   [`SIGNATURE`](NamedTask::SIGNATURE) spells the parameter and result types; its
//!   [fingerprint](NamedTask::fingerprint) is a hash of both, so two binaries that disagree on
//!   a task's types refuse each other's calls instead of decoding garbage;
//! - a [`Registration`] in the binary-wide [`registry`], built by `inventory` without a
//!   hand-kept list: `registry().get(name)` finds the shim that decodes the arguments, runs
//!   the function and encodes the result.
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

//! # What cannot be a named task
//!
//! Every peer must agree on one signature, and the inputs are shared, so the attribute
//! refuses async functions, generic functions and `&mut` parameters at compile time:
//!
//! ```compile_fail
//! #[peer_core::task]
//! async fn fetch(url: String) -> String { url }
//! ```
//!
//! ```compile_fail
//! #[peer_core::task]
//! fn first<T: Clone>(items: &Vec<T>) -> T { items[0].clone() }
//! ```
//!
//! ```compile_fail
//! #[peer_core::task]
//! fn push(items: &mut Vec<u8>) {}
//! ```

mod args;
pub mod decoded;
mod registry;

pub use args::{Arg, ArgFailure, ArgSlot, Args, FutureArg, IntoArg, IntoArgs};
pub use registry::{CallError, Registration, Registry, registry};

/// A function registered by name; implemented by [`#[task]`](crate::task).
pub trait NamedTask: Send + Sync + 'static {
    /// The stable name peers use to refer to it.
    const NAME: &'static str;
    /// Its parameter and result types as written, e.g. `fn(f64,&Vec<f64>,) -> f64`.
    const SIGNATURE: &'static str;
    /// The parameter types, stored and encoded as owned values.
    type Args: Args;
    /// The result type.
    type Output: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static;

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

/// FNV-1a over the name and signature: stable across builds and platforms.
pub(crate) const fn fingerprint(name: &str, signature: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let (a, b) = (name.as_bytes(), signature.as_bytes());
    let mut i = 0;
    while i < a.len() + 1 + b.len() {
        let byte = if i < a.len() {
            a[i]
        } else if i == a.len() {
            0
        } else {
            b[i - a.len() - 1]
        };
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}

/// Runs `N` the way a remote peer will: encode the arguments, look the name up, check the
/// fingerprint, decode and run through the registry's shim, then decode the result.
pub(crate) fn call_encoded<N: NamedTask>(
    refs: <N::Args as Args>::Refs<'_>,
    task: crate::TaskId,
) -> Result<N::Output, crate::TaskError> {
    use crate::TaskError;
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
