//! How a task can fail.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::id::TaskId;

/// Why a task has no value. Cheap to clone: every reader of a failed task gets a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked (on its last attempt, if it had retries).
    Panicked {
        /// The task that panicked.
        task: TaskId,
        /// The panic message, or a placeholder if the payload was not a string.
        message: Arc<str>,
    },
    /// An input of the task failed, so the task never ran.
    InputFailed {
        /// The task that did not run.
        task: TaskId,
        /// Its input that failed.
        input: TaskId,
        /// The first failure in the chain: always a [`TaskError::Panicked`], never another
        /// `InputFailed`, so long chains of failures stay shallow.
        cause: Arc<TaskError>,
    },
    /// The task, or one of its inputs, was cancelled before it ran.
    Cancelled {
        /// The task that did not run.
        task: TaskId,
    },
    /// The client shut down before the task, or one of its inputs, ran.
    Shutdown {
        /// The task that did not run.
        task: TaskId,
    },
}

impl TaskError {
    /// The task this error belongs to.
    pub fn task(&self) -> TaskId {
        match self {
            TaskError::Panicked { task, .. }
            | TaskError::InputFailed { task, .. }
            | TaskError::Cancelled { task }
            | TaskError::Shutdown { task } => *task,
        }
    }

    /// Whether the task did not run because it or an input was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled { .. })
    }

    pub(crate) fn panicked(task: TaskId, payload: Box<dyn Any + Send>) -> TaskError {
        let message: Arc<str> = if let Some(s) = payload.downcast_ref::<&'static str>() {
            Arc::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Arc::from(s.as_str())
        } else {
            Arc::from("<non-string panic payload>")
        };
        // Dropping a payload can itself panic; keep that from escaping a worker.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)));
        TaskError::Panicked { task, message }
    }

    /// The error a dependent `task` gets when its input failed with `self`.
    pub(crate) fn for_dependent(&self, task: TaskId) -> TaskError {
        match self {
            TaskError::Cancelled { .. } => TaskError::Cancelled { task },
            TaskError::Shutdown { .. } => TaskError::Shutdown { task },
            TaskError::InputFailed {
                input: _,
                cause,
                task: failed,
            } => TaskError::InputFailed {
                task,
                input: *failed,
                cause: cause.clone(),
            },
            TaskError::Panicked { task: failed, .. } => TaskError::InputFailed {
                task,
                input: *failed,
                cause: Arc::new(self.clone()),
            },
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked { task, message } => write!(f, "{task} panicked: {message}"),
            TaskError::InputFailed { task, input, cause } => {
                write!(
                    f,
                    "{task} did not run because its input {input} failed ({cause})"
                )
            }
            TaskError::Cancelled { task } => write!(f, "{task} was cancelled"),
            TaskError::Shutdown { task } => {
                write!(f, "{task} did not run because its client shut down")
            }
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::InputFailed { cause, .. } => Some(&**cause),
            _ => None,
        }
    }
}
