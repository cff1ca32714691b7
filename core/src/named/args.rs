//! Arguments of named tasks: how they are stored, encoded and given.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::NamedTask;
use super::registry::CallError;
use crate::client::Client;
use crate::error::TaskError;
use crate::future::TaskFuture;
use crate::id::TaskId;

/// The parameter types of a named task, as a tuple of owned values `(A, B, ...)` (up to six).
pub trait Args: Sized + Send + Sync + 'static {
    /// References to each value: `(&A, &B, ...)`.
    type Refs<'a>;
    /// How many parameters.
    const COUNT: usize;

    /// Decodes one byte string per parameter.
    fn decode(bytes: &[&[u8]]) -> Result<Self, CallError>;
    /// References to the stored values.
    fn as_refs(&self) -> Self::Refs<'_>;
    /// Encodes each value into its own byte string.
    fn encode(refs: Self::Refs<'_>) -> Result<Vec<Vec<u8>>, CallError>;
    /// Each value behind an `Arc`, shared between calls given the same bytes.
    type Shared: Send;
    /// Decodes shared byte strings, reusing values decoded from the same bytes before.
    fn decode_shared(bytes: &[std::sync::Arc<Vec<u8>>]) -> Result<Self::Shared, CallError>;
    /// References to the shared values.
    fn shared_refs(shared: &Self::Shared) -> Self::Refs<'_>;
}

/// One argument of a named task as given.
pub enum Arg<T> {
    /// A plain value.
    Value(T),
    /// The future of an earlier task.
    Future(TaskFuture<T>),
}

/// One argument of a named task: a value, or `&TaskFuture` of an earlier task.
pub trait IntoArg<T> {
    /// The argument as given.
    fn into_arg(self) -> Arg<T>;
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
}

impl<T: Send + Sync + 'static> Arg<T> {
    /// A future of the argument: the future itself, or the value stored as a finished task.
    fn into_future(self, client: &Client) -> TaskFuture<T> {
        match self {
            Arg::Value(v) => client.scatter(v),
            Arg::Future(f) => f,
        }
    }
}

/// The arguments of a call to a named task: a tuple with one [`IntoArg`] per parameter.
pub trait IntoArgs<A: Args> {
    #[doc(hidden)]
    fn submit<N: NamedTask<Args = A>>(self, client: &Client) -> TaskFuture<N::Output>;

    /// The arguments as another peer receives them: values encoded now, futures encoded
    /// when done. How `peer-net` sends a call across the swarm.
    fn into_slots(self) -> Result<Vec<ArgSlot>, CallError>;
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
    fn into_slot(self, index: usize) -> Result<ArgSlot, CallError> {
        match self {
            Arg::Value(v) => encode_one(index, &v).map(ArgSlot::Encoded),
            Arg::Future(f) => Ok(ArgSlot::Future(FutureArg {
                task: f.id(),
                encoded: Box::pin(async move {
                    let value = (&f).await.map_err(ArgFailure::Input)?;
                    encode_one(index, value).map_err(ArgFailure::Encode)
                }),
            })),
        }
    }
}

fn decode_one<T: DeserializeOwned>(index: usize, bytes: &[u8]) -> Result<T, CallError> {
    postcard::from_bytes(bytes).map_err(|e| CallError::DecodeArg {
        index,
        message: e.to_string(),
    })
}

fn encode_one<T: Serialize>(index: usize, value: &T) -> Result<Vec<u8>, CallError> {
    postcard::to_allocvec(value).map_err(|e| CallError::EncodeArg {
        index,
        message: e.to_string(),
    })
}

fn check_count<B>(expected: usize, bytes: &[B]) -> Result<(), CallError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(CallError::ArgCount {
            expected,
            found: bytes.len(),
        })
    }
}

impl Args for () {
    type Refs<'a> = ();
    const COUNT: usize = 0;

    fn decode(bytes: &[&[u8]]) -> Result<(), CallError> {
        check_count(0, bytes)
    }
    fn as_refs(&self) {}
    fn encode((): ()) -> Result<Vec<Vec<u8>>, CallError> {
        Ok(Vec::new())
    }
    type Shared = ();
    fn decode_shared(bytes: &[std::sync::Arc<Vec<u8>>]) -> Result<(), CallError> {
        check_count(0, bytes)
    }
    fn shared_refs((): &()) {}
}

impl IntoArgs<()> for () {
    fn into_slots(self) -> Result<Vec<ArgSlot>, CallError> {
        Ok(Vec::new())
    }

    fn submit<N: NamedTask<Args = ()>>(self, client: &Client) -> TaskFuture<N::Output> {
        if client.encodes_named_tasks() {
            client.submit_fallible(|id| super::call_encoded::<N>((), id))
        } else {
            client.submit(|| N::call(()))
        }
    }
}

macro_rules! args_tuple {
    ($n:expr; $($A:ident $X:ident $a:ident $i:tt),+) => {
        impl<$($A),+> Args for ($($A,)+)
        where
            $($A: Serialize + DeserializeOwned + Send + Sync + 'static),+
        {
            type Refs<'a> = ($(&'a $A,)+);
            const COUNT: usize = $n;

            fn decode(bytes: &[&[u8]]) -> Result<Self, CallError> {
                check_count($n, bytes)?;
                Ok(($(decode_one::<$A>($i, bytes[$i])?,)+))
            }
            fn as_refs(&self) -> Self::Refs<'_> {
                ($(&self.$i,)+)
            }
            fn encode(($($a,)+): Self::Refs<'_>) -> Result<Vec<Vec<u8>>, CallError> {
                Ok(vec![$(encode_one($i, $a)?),+])
            }
            type Shared = ($(std::sync::Arc<$A>,)+);
            fn decode_shared(
                bytes: &[std::sync::Arc<Vec<u8>>],
            ) -> Result<Self::Shared, CallError> {
                check_count($n, bytes)?;
                Ok(($(super::decoded::decoded::<$A>($i, &bytes[$i])?,)+))
            }
            fn shared_refs(shared: &Self::Shared) -> Self::Refs<'_> {
                ($(&*shared.$i,)+)
            }
        }

        impl<$($A, $X),+> IntoArgs<($($A,)+)> for ($($X,)+)
        where
            $($A: Serialize + DeserializeOwned + Send + Sync + 'static, $X: IntoArg<$A>),+
        {
            fn into_slots(self) -> Result<Vec<ArgSlot>, CallError> {
                Ok(vec![$(self.$i.into_arg().into_slot($i)?),+])
            }

            fn submit<N: NamedTask<Args = ($($A,)+)>>(self, client: &Client) -> TaskFuture<N::Output> {
                match ($(self.$i.into_arg(),)+) {
                    // Only values: one ready task that owns them, no futures to wait on.
                    ($(Arg::Value($a),)+) => {
                        let values = ($($a,)+);
                        if client.encodes_named_tasks() {
                            client.submit_fallible(move |id| {
                                super::call_encoded::<N>(Args::as_refs(&values), id)
                            })
                        } else {
                            client.submit(move || N::call(Args::as_refs(&values)))
                        }
                    }
                    // Some futures: values join the graph as finished tasks.
                    ($($a,)+) => {
                        let futures = ($($a.into_future(client),)+);
                        let inputs = ($(&futures.$i,)+);
                        if client.encodes_named_tasks() {
                            client.submit_fallible_with(inputs, |($($a,)+), id| {
                                super::call_encoded::<N>(($($a,)+), id)
                            })
                        } else {
                            client.submit_with(inputs, |($($a,)+)| N::call(($($a,)+)))
                        }
                    }
                }
            }
        }
    };
}

args_tuple!(1; A0 X0 a0 0);
args_tuple!(2; A0 X0 a0 0, A1 X1 a1 1);
args_tuple!(3; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2);
args_tuple!(4; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3);
args_tuple!(5; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4);
args_tuple!(6; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5);
