//! Extension points of `peer-core`, for `peer-net` and for the code `#[task]` generates.
//!
//! **Not for programs.** This module is hidden from the docs and carries no stability
//! promise: anything in it may change in any release, together with the `peer-net` and
//! `peer-macros` of the same version. A program needs [`Client`](crate::Client),
//! [`TaskFuture`](crate::TaskFuture), [`NamedTask`](crate::NamedTask), `#[task]`,
//! [`Portable`](crate::named::Portable), the primitives of [`sync`](crate::sync) and the
//! errors, none of which is here.
//!
//! What is here:
//! - **Named tasks on a swarm.** A [`Client`](crate::Client) built with `Builder::remote`
//!   hands each named task to its [`Remote`] as a [`Call`] (arguments as [`ArgSlot`]s:
//!   values encoded, or a [`FutureArg`] encoded when its task is done, failing with an
//!   [`ArgFailure`]) and is answered through [`Done`]. An [`Arg`] is an argument as given
//!   (`peer-net`'s job handles implement `IntoArg` with it); [`CallError`] is why running a
//!   task from encoded arguments failed.
//! - **Primitives on a swarm.** A client built with `Builder::backend` keeps its locks,
//!   queues, ... in a [`Backend`]: the [`LocalBackend`] by default, `peer-net`'s on home
//!   peers. The backend traits, [`Ticket`], [`Codec`], [`Grant`], and the [`keys`] that name
//!   each primitive.
//! - **One hash**: [`fnv1a`] and [`Fnv1a`], the FNV-1a every crate of the workspace uses
//!   where a hash must agree across processes (task fingerprints, peer numbers, placement).
//! - **For `#[task]`**: [`inventory`], [`register`] and [`portable`].
//!
//! Also extension points, though they sit on public types (hidden from their docs):
//! `Builder::backend`, `Builder::remote`, `Client::pool_view`, `Registration::{call,
//! call_shared, check}`, `IntoArg::into_arg`, `IntoArgs::into_slots`, and the codec items of
//! `named::Args` (`decode`, `encode`, `as_refs`, `Shared`, `decode_shared`, `shared_refs`).

pub use crate::hash::{Fnv1a, fnv1a};
pub use crate::named::given::{Arg, ArgFailure, ArgSlot, FutureArg, Gather};
pub use crate::named::registry::CallError;
pub use crate::named::remote::{Call, Done, Place, Remote};
pub use crate::sync::backend::{
    Backend, Codec, EventBackend, Grant, Next, Payload, QueueBackend, SemaphoreBackend, Shared,
    Ticket, TopicBackend, VariableBackend, keys,
};
pub use crate::sync::local::LocalBackend;

pub use inventory;

/// Compiles only for a [`Portable`](crate::named::Portable) `T`: `#[task]` checks each
/// parameter and the result with it, at its type, so that the error names the type.
pub fn portable<T: crate::named::Portable>() {}

/// The registration of `T` that `#[task]` submits to the registry.
pub const fn register<T: crate::NamedTask>() -> crate::named::Registration {
    crate::named::Registration::of::<T>()
}
