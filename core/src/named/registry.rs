//! The binary-wide table of named tasks.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use super::{Args, NamedTask};

/// Decodes arguments, runs a task and encodes its result.
type Shim = fn(&[&[u8]]) -> Result<Vec<u8>, CallError>;
/// The shim for arguments as shared bytes.
type SharedShim = fn(&[Arc<Vec<u8>>]) -> Result<Vec<u8>, CallError>;

/// One named task as the registry knows it: its name, fingerprint and type-erased shim.
pub struct Registration {
    name: &'static str,
    signature: &'static str,
    fingerprint: u64,
    run: Shim,
    run_shared: SharedShim,
    check: fn(&[&[u8]]) -> Result<(), CallError>,
}

inventory::collect!(Registration);

/// Why running a task from encoded arguments failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The call carried a different number of arguments than the function takes.
    ArgCount {
        /// Parameters of the function.
        expected: usize,
        /// Arguments in the call.
        found: usize,
    },
    /// Argument `index` (from 0) did not decode as the parameter's type.
    DecodeArg {
        /// Which argument.
        index: usize,
        /// The decoder's message.
        message: String,
    },
    /// An argument could not be encoded.
    EncodeArg {
        /// Which argument.
        index: usize,
        /// The encoder's message.
        message: String,
    },
    /// The result did not decode as the result type.
    DecodeResult(String),
    /// The result could not be encoded.
    EncodeResult(String),
}

impl Registration {
    /// The registration of `T`; what `#[task]` submits to the registry (through
    /// `crate::ext::register`).
    pub(crate) const fn of<T: NamedTask>() -> Registration {
        Registration {
            name: T::NAME,
            signature: T::SIGNATURE,
            fingerprint: T::FINGERPRINT,
            run: run::<T>,
            run_shared: run_shared::<T>,
            check: check::<T>,
        }
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The task's parameter and result types as written.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// Hash of name and signature; see [`NamedTask::fingerprint`].
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Decodes the arguments, runs the function and encodes its result. A panic in the
    /// function propagates; callers run this inside a task, which catches it. An extension
    /// point (see `crate::ext`), hidden.
    #[doc(hidden)]
    pub fn call(&self, args: &[&[u8]]) -> Result<Vec<u8>, CallError> {
        (self.run)(args)
    }

    /// Like [`call`](Registration::call) with arguments as shared bytes: a large argument
    /// given as the same bytes to many calls is decoded once and shared (a swarm peer's
    /// inputs are such bytes). An extension point, hidden.
    #[doc(hidden)]
    pub fn call_shared(&self, args: &[Arc<Vec<u8>>]) -> Result<Vec<u8>, CallError> {
        (self.run_shared)(args)
    }

    /// Decodes the arguments without running anything: validates a call before accepting it.
    /// An extension point, hidden.
    #[doc(hidden)]
    pub fn check(&self, args: &[&[u8]]) -> Result<(), CallError> {
        (self.check)(args)
    }
}

fn run<T: NamedTask>(bytes: &[&[u8]]) -> Result<Vec<u8>, CallError> {
    let args = <T::Args as Args>::decode(bytes)?;
    let output = T::call(args.as_refs());
    postcard::to_allocvec(&output).map_err(|e| CallError::EncodeResult(e.to_string()))
}

fn run_shared<T: NamedTask>(bytes: &[Arc<Vec<u8>>]) -> Result<Vec<u8>, CallError> {
    let shared = <T::Args as Args>::decode_shared(bytes)?;
    let output = T::call(<T::Args as Args>::shared_refs(&shared));
    postcard::to_allocvec(&output).map_err(|e| CallError::EncodeResult(e.to_string()))
}

fn check<T: NamedTask>(bytes: &[&[u8]]) -> Result<(), CallError> {
    <T::Args as Args>::decode(bytes).map(drop)
}

/// Every named task linked into this binary, by name.
pub struct Registry {
    by_name: HashMap<&'static str, &'static Registration>,
    duplicates: Vec<&'static str>,
}

/// The registry of this binary, built on first use.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        for r in inventory::iter::<Registration> {
            if by_name.insert(r.name, r).is_some() {
                duplicates.push(r.name);
            }
        }
        Registry {
            by_name,
            duplicates,
        }
    })
}

impl Registry {
    /// The task registered under `name`. A name registered twice (two functions given the
    /// same `name = "..."`) resolves to none of them, so a call never runs the wrong one.
    pub fn get(&self, name: &str) -> Option<&'static Registration> {
        if self.duplicates.contains(&name) {
            return None;
        }
        self.by_name.get(name).copied()
    }

    /// Names registered more than once; a binary should have none.
    pub fn duplicates(&self) -> &[&'static str] {
        &self.duplicates
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.by_name.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Every registration linked into the binary, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = &'static Registration> {
        inventory::iter::<Registration>.into_iter()
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether no task is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("signature", &self.signature)
            .finish()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .field("duplicates", &self.duplicates)
            .finish()
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::ArgCount { expected, found } => {
                write!(f, "takes {expected} arguments but the call carried {found}")
            }
            CallError::DecodeArg { index, message } => {
                write!(f, "argument {index} did not decode: {message}")
            }
            CallError::EncodeArg { index, message } => {
                write!(f, "argument {index} could not be encoded: {message}")
            }
            CallError::DecodeResult(m) => write!(f, "the result did not decode: {m}"),
            CallError::EncodeResult(m) => write!(f, "the result could not be encoded: {m}"),
        }
    }
}

impl std::error::Error for CallError {}
