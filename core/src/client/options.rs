//! `TaskBuilder`: options for one task (retries).

use super::Client;
use crate::cell::Retry;
use crate::future::TaskFuture;
use crate::inputs::{Held, Inputs};
use crate::named::{IntoArgs, NamedTask};

/// Options for one task: `client.task().retries(3).submit_local(f)`.
#[derive(Debug)]
#[must_use = "a task builder does nothing until submitted"]
pub struct TaskBuilder<'c> {
    client: &'c Client,
    retries: u32,
}

impl<'c> TaskBuilder<'c> {
    pub(super) fn new(client: &'c Client) -> Self {
        TaskBuilder { client, retries: 0 }
    }

    /// Runs the function up to `1 + n` times until it does not panic. The function must be
    /// `FnMut` so it can be called again; inputs are passed again on each attempt.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Like [`Client::submit_local`], with these options.
    pub fn submit_local<T, F>(self, mut f: F) -> TaskFuture<T>
    where
        F: FnMut() -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.client.submit_ready(Retry {
            f: move |()| f(),
            retries: self.retries,
        })
    }

    /// Like [`Client::submit_named`], with these options; a named task is called again as it
    /// was the first time, with the same arguments.
    pub fn submit_named<N, A, F>(self, task: N, args: A) -> TaskFuture<N::Output>
    where
        N: NamedTask,
        A: IntoArgs<N::Args, F>,
    {
        let _ = task;
        self.client
            .submit_named_retrying::<N, A, F>(args, self.retries)
    }

    /// Like [`Client::submit_local_with`], with these options.
    pub fn submit_local_with<I, T, F>(self, inputs: I, f: F) -> TaskFuture<T>
    where
        I: Inputs,
        F: for<'a> FnMut(<I::Held as Held>::Refs<'a>) -> T + Send + 'static,
        T: Send + Sync + 'static,
    {
        self.client.submit_after(
            inputs,
            Retry {
                f,
                retries: self.retries,
            },
        )
    }
}
