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
        /// The first failure in the chain (a panic, a named-task error), never another
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
    /// No named task of this name is registered in the binary that was to run it.
    UnknownTask {
        /// The task that did not run.
        task: TaskId,
        /// The name it was submitted under.
        name: Arc<str>,
    },
    /// The runner registers the name with other parameter or result types.
    SignatureMismatch {
        /// The task that did not run.
        task: TaskId,
        /// Its name.
        name: Arc<str>,
        /// The signature the caller was built with.
        expected: Arc<str>,
        /// The signature the runner has.
        found: Arc<str>,
    },
    /// The arguments of a named task could not be encoded or did not decode.
    BadArguments {
        /// The task that did not run.
        task: TaskId,
        /// Its name.
        name: Arc<str>,
        /// What went wrong, naming the argument.
        message: Arc<str>,
    },
    /// The task's result, or an input it needed, was lost with a peer of the swarm.
    Lost {
        /// The task.
        task: TaskId,
        /// What was lost, and where.
        message: Arc<str>,
    },
    /// The result of a named task could not be encoded or did not decode.
    BadResult {
        /// The task whose result was lost.
        task: TaskId,
        /// Its name.
        name: Arc<str>,
        /// What went wrong.
        message: Arc<str>,
    },
}

impl TaskError {
    /// The task this error belongs to.
    pub fn task(&self) -> TaskId {
        match self {
            TaskError::Panicked { task, .. }
            | TaskError::InputFailed { task, .. }
            | TaskError::Cancelled { task }
            | TaskError::Shutdown { task }
            | TaskError::UnknownTask { task, .. }
            | TaskError::SignatureMismatch { task, .. }
            | TaskError::BadArguments { task, .. }
            | TaskError::BadResult { task, .. }
            | TaskError::Lost { task, .. } => *task,
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
            root => TaskError::InputFailed {
                task,
                input: root.task(),
                cause: Arc::new(root.clone()),
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
            TaskError::UnknownTask { task, name } => {
                write!(f, "{task} names `{name}`, which no registered task has")
            }
            TaskError::SignatureMismatch {
                task,
                name,
                expected,
                found,
            } => write!(
                f,
                "{task} calls `{name}` as `{expected}` but the runner registers it as `{found}`"
            ),
            TaskError::BadArguments {
                task,
                name,
                message,
            } => write!(f, "{task} (`{name}`): {message}"),
            TaskError::BadResult {
                task,
                name,
                message,
            } => write!(f, "{task} (`{name}`): {message}"),
            TaskError::Lost { task, message } => write!(f, "{task} was lost: {message}"),
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
