//! The parameters of a named task as stored and encoded: a tuple of owned values.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Portable;
use super::registry::CallError;

/// The parameter types of a named task, as a tuple of owned values `(A, B, ...)` (up to
/// twelve).
pub trait Args: Sized + Send + Sync + 'static {
    /// References to each value: `(&A, &B, ...)`.
    type Refs<'a>: Copy;
    /// How many parameters.
    const COUNT: usize;

    // The codec of the arguments: extension points (see `crate::ext`), hidden.

    /// Decodes one byte string per parameter.
    #[doc(hidden)]
    fn decode(bytes: &[&[u8]]) -> Result<Self, CallError>;
    /// References to the stored values.
    #[doc(hidden)]
    fn as_refs(&self) -> Self::Refs<'_>;
    /// Encodes each value into its own byte string.
    #[doc(hidden)]
    fn encode(refs: Self::Refs<'_>) -> Result<Vec<Vec<u8>>, CallError>;
    /// Each value behind an `Arc`, shared between calls given the same bytes.
    #[doc(hidden)]
    type Shared: Send;
    /// Decodes shared byte strings, reusing values decoded from the same bytes before.
    #[doc(hidden)]
    fn decode_shared(bytes: &[Arc<Vec<u8>>]) -> Result<Self::Shared, CallError>;
    /// References to the shared values.
    #[doc(hidden)]
    fn shared_refs(shared: &Self::Shared) -> Self::Refs<'_>;
}

pub(super) fn decode_one<T: DeserializeOwned>(index: usize, bytes: &[u8]) -> Result<T, CallError> {
    postcard::from_bytes(bytes).map_err(|e| CallError::DecodeArg {
        index,
        message: e.to_string(),
    })
}

pub(super) fn encode_one<T: Serialize + ?Sized>(
    index: usize,
    value: &T,
) -> Result<Vec<u8>, CallError> {
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
    fn decode_shared(bytes: &[Arc<Vec<u8>>]) -> Result<(), CallError> {
        check_count(0, bytes)
    }
    fn shared_refs((): &()) {}
}

macro_rules! args_tuple {
    ($n:expr; $($A:ident $X:ident $a:ident $i:tt),+) => {
        impl<$($A),+> Args for ($($A,)+)
        where
            $($A: Portable),+
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
            type Shared = ($(Arc<$A>,)+);
            fn decode_shared(bytes: &[Arc<Vec<u8>>]) -> Result<Self::Shared, CallError> {
                check_count($n, bytes)?;
                Ok(($(super::decoded::decoded::<$A>($i, &bytes[$i])?,)+))
            }
            fn shared_refs(shared: &Self::Shared) -> Self::Refs<'_> {
                ($(&*shared.$i,)+)
            }
        }
    };
}

/// Calls `$m!` once per arity from 1 to 12, with `Type Given var index` per parameter.
macro_rules! for_each_arity {
    ($m:ident) => {
        $m!(1; A0 X0 a0 0);
        $m!(2; A0 X0 a0 0, A1 X1 a1 1);
        $m!(3; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2);
        $m!(4; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3);
        $m!(5; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4);
        $m!(6; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5);
        $m!(7; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6);
        $m!(8; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6, A7 X7 a7 7);
        $m!(9; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6, A7 X7 a7 7,
            A8 X8 a8 8);
        $m!(10; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6, A7 X7 a7 7,
            A8 X8 a8 8, A9 X9 a9 9);
        $m!(11; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6, A7 X7 a7 7,
            A8 X8 a8 8, A9 X9 a9 9, A10 X10 a10 10);
        $m!(12; A0 X0 a0 0, A1 X1 a1 1, A2 X2 a2 2, A3 X3 a3 3, A4 X4 a4 4, A5 X5 a5 5, A6 X6 a6 6, A7 X7 a7 7,
            A8 X8 a8 8, A9 X9 a9 9, A10 X10 a10 10, A11 X11 a11 11);
    };
}
pub(super) use for_each_arity;

for_each_arity!(args_tuple);
