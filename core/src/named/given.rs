//! Arguments as a caller gives them: values, futures of earlier tasks, or many futures
//! gathered into one `Vec` (fan-in); one alone or a tuple with one per parameter.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use super::Portable;
use super::args::{Args, encode_one, for_each_arity};
use super::registry::CallError;
use super::{NamedTask, call_encoded, retrying};
use crate::client::Client;
use crate::error::TaskError;
use crate::future::TaskFuture;
use crate::id::TaskId;

/// One argument of a named task as given.
pub enum Arg<T> {
    /// A plain value.
    Value(T),
    /// The future of an earlier task.
    Future(TaskFuture<T>),
    /// Futures whose values become the elements of `T`, a `Vec`.
    Gather(Gather<T>),
}

/// One argument of a named task: a value `T`, a `&TaskFuture<T>`, or, for a parameter
/// stored as `Vec<E>` (`&[E]` or `Vec<E>` in the function), the futures of its elements as
/// `&[TaskFuture<E>]` or `&[&TaskFuture<E>]` (or `&Vec` of either).
pub trait IntoArg<T> {
    /// The argument as given; an extension point (`peer-net`'s job handles are arguments
    /// too), hidden.
    #[doc(hidden)]
    fn into_arg(self) -> Arg<T>;

    /// Adds to `out` what the argument waits on: the id of a future without its value yet
    /// (not done, or failed). Hidden: how a remote tells which calls may share a task.
    #[doc(hidden)]
    fn pending(&self, out: &mut Vec<TaskId>) {
        let _ = out;
    }
}

/// Whether a future has its value (it is done, and did not fail).
fn has_value<T: Send + Sync + 'static>(future: &TaskFuture<T>) -> bool {
    future.try_get().is_some_and(|result| result.is_ok())
}

impl<T: Send + Sync + 'static> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Value(self)
    }
}

impl<T: Send + Sync + 'static> IntoArg<T> for &TaskFuture<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Future(self.clone())
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        if !has_value(self) {
            out.push(self.id());
        }
    }
}

/// A gather's [`IntoArg::pending`]: no one task makes its value, so it waits on an id of
/// its own (as its [`FutureArg`] does) while an element has no value.
fn gather_pending<'a, E: Element>(
    mut futures: impl Iterator<Item = &'a TaskFuture<E>>,
    out: &mut Vec<TaskId>,
) {
    if !futures.all(has_value) {
        out.push(TaskId::next());
    }
}

/// The element types a fan-in argument can gather: each value is cloned into the `Vec` the
/// function reads (a slice needs its elements side by side), or encoded into it.
pub trait Element: Portable + Clone {}
impl<E: Portable + Clone> Element for E {}

// Only references to futures gather: an owned `Vec` is always a value, so `Vec::new()` or
// `vec![]` as an argument stays unambiguous.
impl<E: Element> IntoArg<Vec<E>> for &[TaskFuture<E>] {
    fn into_arg(self) -> Arg<Vec<E>> {
        Arg::Gather(Gather(Box::new(self.to_vec())))
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        gather_pending(self.iter(), out);
    }
}

impl<E: Element> IntoArg<Vec<E>> for &Vec<TaskFuture<E>> {
    fn into_arg(self) -> Arg<Vec<E>> {
        self.as_slice().into_arg()
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        gather_pending(self.iter(), out);
    }
}

impl<E: Element> IntoArg<Vec<E>> for &[&TaskFuture<E>] {
    fn into_arg(self) -> Arg<Vec<E>> {
        let futures: Vec<TaskFuture<E>> = self.iter().map(|f| (*f).clone()).collect();
        Arg::Gather(Gather(Box::new(futures)))
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        gather_pending(self.iter().copied(), out);
    }
}

impl<E: Element> IntoArg<Vec<E>> for &Vec<&TaskFuture<E>> {
    fn into_arg(self) -> Arg<Vec<E>> {
        self.as_slice().into_arg()
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        gather_pending(self.iter().copied(), out);
    }
}

/// Futures gathered into one `Vec` argument; made by [`IntoArg`] from futures of elements.
pub struct Gather<T>(Box<dyn Gathered<T>>);

trait Gathered<T>: Send {
    /// A local task that collects the values.
    fn into_future(self: Box<Self>, client: &Client) -> TaskFuture<T>;
    /// The values, encoded as one `Vec` once all are done.
    fn into_slot(self: Box<Self>, index: usize) -> ArgSlot;
}

impl<E: Element> Gathered<Vec<E>> for Vec<TaskFuture<E>> {
    fn into_future(self: Box<Self>, client: &Client) -> TaskFuture<Vec<E>> {
        client.submit_local_with(self.as_slice(), |values| {
            values.into_iter().cloned().collect()
        })
    }

    fn into_slot(self: Box<Self>, index: usize) -> ArgSlot {
        ArgSlot::Future(FutureArg {
            // No one task makes this value: a fresh id the receiver knows as local.
            task: TaskId::next(),
            done: self.iter().all(has_value),
            encoded: Box::pin(async move {
                let mut values = Vec::with_capacity(self.len());
                for future in self.iter() {
                    values.push(future.await.map_err(ArgFailure::Input)?);
                }
                // `Vec<&E>` encodes exactly as `Vec<E>`: no clone on the way out.
                encode_one(index, &values).map_err(ArgFailure::Encode)
            }),
        })
    }
}

/// One argument of a call to a named task, on its way to another peer.
pub enum ArgSlot {
    /// A value, encoded.
    Encoded(Vec<u8>),
    /// The future of an earlier task.
    Future(FutureArg),
}

/// A future argument: its task, and its value encoded once the task is done.
pub struct FutureArg {
    /// The earlier task.
    pub task: TaskId,
    /// Whether its value was there when the call was made (done, not failed): a task not
    /// done then may come to depend on work submitted after the call.
    pub done: bool,
    /// Resolves to the encoded value, or to why there is none.
    pub encoded: Pin<Box<dyn Future<Output = Result<Vec<u8>, ArgFailure>> + Send>>,
}

/// Why a future argument has no encoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgFailure {
    /// The earlier task failed.
    Input(TaskError),
    /// Its value could not be encoded.
    Encode(CallError),
}

impl<T: Serialize + Send + Sync + 'static> Arg<T> {
    /// A future of the argument: the future itself, or the value stored as a finished task.
    fn into_future(self, client: &Client) -> TaskFuture<T> {
        match self {
            Arg::Value(v) => client.scatter(v),
            Arg::Future(f) => f,
            Arg::Gather(g) => g.0.into_future(client),
        }
    }

    fn into_slot(self, index: usize) -> Result<ArgSlot, CallError> {
        match self {
            Arg::Value(v) => encode_one(index, &v).map(ArgSlot::Encoded),
            Arg::Future(f) => Ok(ArgSlot::Future(FutureArg {
                task: f.id(),
                done: has_value(&f),
                encoded: Box::pin(async move {
                    let value = (&f).await.map_err(ArgFailure::Input)?;
                    encode_one(index, value).map_err(ArgFailure::Encode)
                }),
            })),
            Arg::Gather(g) => Ok(g.0.into_slot(index)),
        }
    }
}

/// How a call's arguments are written; inferred, never named by callers.
pub mod form {
    /// A tuple with one argument per parameter: `(0.5, &data)`, `(3,)`, `()`.
    #[derive(Debug)]
    pub enum Tuple {}
    /// The one argument of a one-parameter task, alone: `3`, `&data`.
    #[derive(Debug)]
    pub enum Bare {}
}

/// The arguments of a call to a named task: a tuple with one [`IntoArg`] per parameter, or
/// for a task of one parameter that argument alone. `F` is the [`form`] they are written
/// in, which the compiler infers.
pub trait IntoArgs<A: Args, F = form::Tuple> {
    #[doc(hidden)]
    fn submit<N: NamedTask<Args = A>>(self, client: &Client, retries: u32)
    -> TaskFuture<N::Output>;

    /// The arguments as another peer receives them: values encoded now, futures encoded
    /// when done. How `peer-net` sends a call across the swarm; an extension point, hidden.
    #[doc(hidden)]
    fn into_slots(self) -> Result<Vec<ArgSlot>, CallError>;

    /// Adds to `out` what the arguments wait on (see [`IntoArg::pending`]). Hidden.
    #[doc(hidden)]
    fn pending(&self, out: &mut Vec<TaskId>) {
        let _ = out;
    }
}

/// Submits a call whose arguments are all values: one ready task that owns them.
fn submit_values<N: NamedTask>(
    client: &Client,
    values: N::Args,
    retries: u32,
) -> TaskFuture<N::Output> {
    let probe = client.probe();
    if client.encodes_named_tasks() {
        client.submit_fallible(move |id| {
            probe.try_call::<N, _>(|| retrying(retries, || call_encoded::<N>(values.as_refs(), id)))
        })
    } else if retries == 0 {
        client.submit_local(move || probe.call::<N>(|| N::call(values.as_refs())))
    } else {
        client
            .task()
            .retries(retries)
            .submit_local(move || probe.call::<N>(|| N::call(values.as_refs())))
    }
}

impl IntoArgs<()> for () {
    fn into_slots(self) -> Result<Vec<ArgSlot>, CallError> {
        Ok(Vec::new())
    }

    fn submit<N: NamedTask<Args = ()>>(
        self,
        client: &Client,
        retries: u32,
    ) -> TaskFuture<N::Output> {
        submit_values::<N>(client, (), retries)
    }
}

impl<A, X> IntoArgs<(A,), form::Bare> for X
where
    A: Portable,
    X: IntoArg<A>,
{
    fn into_slots(self) -> Result<Vec<ArgSlot>, CallError> {
        IntoArgs::<(A,)>::into_slots((self,))
    }

    fn pending(&self, out: &mut Vec<TaskId>) {
        IntoArg::pending(self, out);
    }

    fn submit<N: NamedTask<Args = (A,)>>(
        self,
        client: &Client,
        retries: u32,
    ) -> TaskFuture<N::Output> {
        IntoArgs::<(A,)>::submit::<N>((self,), client, retries)
    }
}

macro_rules! into_args_tuple {
    ($n:expr; $($A:ident $X:ident $a:ident $i:tt),+) => {
        impl<$($A, $X),+> IntoArgs<($($A,)+)> for ($($X,)+)
        where
            $($A: Portable, $X: IntoArg<$A>),+
        {
            fn into_slots(self) -> Result<Vec<ArgSlot>, CallError> {
                Ok(vec![$(self.$i.into_arg().into_slot($i)?),+])
            }

            fn pending(&self, out: &mut Vec<TaskId>) {
                $(IntoArg::pending(&self.$i, out);)+
            }

            fn submit<N: NamedTask<Args = ($($A,)+)>>(
                self,
                client: &Client,
                retries: u32,
            ) -> TaskFuture<N::Output> {
                match ($(self.$i.into_arg(),)+) {
                    ($(Arg::Value($a),)+) => submit_values::<N>(client, ($($a,)+), retries),
                    // Some futures: values join the graph as finished tasks.
                    ($($a,)+) => {
                        let futures = ($($a.into_future(client),)+);
                        let inputs = ($(&futures.$i,)+);
                        let probe = client.probe();
                        if client.encodes_named_tasks() {
                            client.submit_fallible_with(inputs, move |refs, id| {
                                probe.try_call::<N, _>(|| retrying(retries, || call_encoded::<N>(refs, id)))
                            })
                        } else if retries == 0 {
                            client.submit_local_with(inputs, move |refs| probe.call::<N>(|| N::call(refs)))
                        } else {
                            client.task().retries(retries).submit_local_with(inputs, move |refs| {
                                probe.call::<N>(|| N::call(refs))
                            })
                        }
                    }
                }
            }
        }
    };
}

for_each_arity!(into_args_tuple);
