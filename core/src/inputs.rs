//! Futures as inputs of later tasks: what `Client::submit_local_with` accepts, and what the task's
//! function receives.

// `Inputs::visit` hands out `&dyn Input`, a crate-private trait: the method is hidden and the
// trait sealed, so nothing outside can call or implement it.
#![allow(private_interfaces)]

use std::sync::Arc;

use crate::cell::{Input, Slot};
use crate::error::TaskError;
use crate::future::TaskFuture;
use crate::id::TaskId;

/// Futures that a task takes as inputs: `&fut`, a tuple of one to twelve `&fut`s, or a slice
/// (`&[TaskFuture<A>]`, `&Vec<TaskFuture<A>>`).
///
/// The task's function receives references to the values: `&A` for one future, `(&A, &B)` for
/// a pair, `Vec<&A>` for a slice. Sealed: it is implemented here for those shapes only.
pub trait Inputs: sealed::Sealed {
    /// What the submitted task keeps of its inputs until it runs.
    type Held: Held;

    #[doc(hidden)]
    fn hold(&self) -> Self::Held;

    #[doc(hidden)]
    fn count(&self) -> usize;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn visit(&self, f: &mut dyn FnMut(&dyn Input));
}

/// The inputs a task keeps; [`Held::Refs`] is what its function is called with.
pub trait Held: sealed::Sealed + Send + Sync + 'static {
    /// References to the input values, borrowed for the duration of the call.
    type Refs<'a>;

    /// The values, or the error the reading task fails with if an input failed.
    #[doc(hidden)]
    fn refs(&self, task: TaskId) -> Result<Self::Refs<'_>, TaskError>;
}

mod sealed {
    /// Public so it can bound the public traits, unnameable outside the crate so nobody else
    /// can implement them.
    #[allow(unreachable_pub)]
    pub trait Sealed {}
}

/// No inputs: the function takes `()`.
impl sealed::Sealed for () {}

impl Held for () {
    type Refs<'a> = ();

    #[inline]
    fn refs(&self, _: TaskId) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Reads a completed input's value; an input that failed fails the reader.
#[inline]
fn value<A>(slot: &Arc<dyn Slot<A>>, task: TaskId) -> Result<&A, TaskError> {
    match slot.header().result() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(e.for_dependent(task)),
        None => unreachable!("a task ran before its input completed"),
    }
}

/// One input future, held.
pub struct One<A>(Arc<dyn Slot<A>>);

impl<A> sealed::Sealed for One<A> {}

impl<A: Send + Sync + 'static> Held for One<A> {
    type Refs<'a> = &'a A;

    #[inline]
    fn refs(&self, task: TaskId) -> Result<&A, TaskError> {
        value(&self.0, task)
    }
}

impl<A> sealed::Sealed for &TaskFuture<A> {}

impl<A: Send + Sync + 'static> Inputs for &TaskFuture<A> {
    type Held = One<A>;

    fn hold(&self) -> One<A> {
        One(self.slot.clone())
    }
    fn count(&self) -> usize {
        1
    }
    fn visit(&self, f: &mut dyn FnMut(&dyn Input)) {
        f(self.slot.header())
    }
}

/// Any number of input futures of one type, held.
pub struct Many<A>(Vec<Arc<dyn Slot<A>>>);

impl<A> sealed::Sealed for Many<A> {}

impl<A: Send + Sync + 'static> Held for Many<A> {
    type Refs<'a> = Vec<&'a A>;

    fn refs(&self, task: TaskId) -> Result<Vec<&A>, TaskError> {
        self.0.iter().map(|s| value(s, task)).collect()
    }
}

impl<A> sealed::Sealed for &[TaskFuture<A>] {}

impl<A: Send + Sync + 'static> Inputs for &[TaskFuture<A>] {
    type Held = Many<A>;

    fn hold(&self) -> Many<A> {
        Many(self.iter().map(|f| f.slot.clone()).collect())
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn visit(&self, f: &mut dyn FnMut(&dyn Input)) {
        for fut in self.iter() {
            f(fut.slot.header());
        }
    }
}

impl<A> sealed::Sealed for &Vec<TaskFuture<A>> {}

impl<A: Send + Sync + 'static> Inputs for &Vec<TaskFuture<A>> {
    type Held = Many<A>;

    fn hold(&self) -> Many<A> {
        self.as_slice().hold()
    }
    fn count(&self) -> usize {
        self.len()
    }
    fn visit(&self, f: &mut dyn FnMut(&dyn Input)) {
        self.as_slice().visit(f)
    }
}

macro_rules! tuple_inputs {
    ($name:ident; $($T:ident $i:tt),+) => {
        /// A fixed tuple of input futures, held.
        pub struct $name<$($T),+>($(Arc<dyn Slot<$T>>),+);

        impl<$($T),+> sealed::Sealed for $name<$($T),+> {}

        impl<$($T: Send + Sync + 'static),+> Held for $name<$($T),+> {
            type Refs<'a> = ($(&'a $T,)+);

            #[inline]
            fn refs(&self, task: TaskId) -> Result<($(&$T,)+), TaskError> {
                Ok(($(value(&self.$i, task)?,)+))
            }
        }

        impl<$($T),+> sealed::Sealed for ($(&TaskFuture<$T>,)+) {}

        impl<$($T: Send + Sync + 'static),+> Inputs for ($(&TaskFuture<$T>,)+) {
            type Held = $name<$($T),+>;

            fn hold(&self) -> $name<$($T),+> {
                $name($(self.$i.slot.clone()),+)
            }
            fn count(&self) -> usize {
                [$($i),+].len()
            }
            fn visit(&self, f: &mut dyn FnMut(&dyn Input)) {
                $(f(self.$i.slot.header());)+
            }
        }
    };
}

tuple_inputs!(Single; A 0);
tuple_inputs!(Two; A 0, B 1);
tuple_inputs!(Three; A 0, B 1, C 2);
tuple_inputs!(Four; A 0, B 1, C 2, D 3);
tuple_inputs!(Five; A 0, B 1, C 2, D 3, E 4);
tuple_inputs!(Six; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_inputs!(Seven; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_inputs!(Eight; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_inputs!(Nine; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_inputs!(Ten; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_inputs!(Eleven; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_inputs!(Twelve; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
