//! `Builder`: how a [`Client`] is configured and its pool started.

use std::fmt;
use std::sync::{Arc, OnceLock};

use peer_steal::Pool;

use super::{CURRENT, Client};
use crate::ext::{Backend, LocalBackend, Remote};
use crate::named::remote::Probe;

/// Configures a [`Client`].
#[derive(Default)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: Option<usize>,
    encode_named: bool,
    backend: Option<Arc<dyn Backend>>,
    remote: Option<Arc<dyn Remote>>,
}

/// The client could not start its worker threads.
#[derive(Debug)]
pub struct BuildError(peer_steal::BuildError);

/// Owns the threads: dropping it stops the remote, then shuts the pool down.
pub(super) struct Owner {
    remote: Option<Arc<dyn Remote>>,
    _pool: Pool,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(remote) = &self.remote {
            remote.shutdown();
        }
    }
}

impl Builder {
    /// Number of worker threads; defaults to the number of cores.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Stack size of each worker thread. Tasks that wait on tasks run other tasks on top of
    /// their own frames, so very deep chains of waiting tasks need deep stacks (default
    /// 64 MiB, reserved, not committed).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Run every named task through the registry with encoded arguments and result, as a
    /// remote peer would, instead of calling the function directly (the default). For tests
    /// of that path, and to check that a program's types survive encoding.
    pub fn encode_named_tasks(mut self, yes: bool) -> Self {
        self.encode_named = yes;
        self
    }

    /// Where named primitives live (default: in this process). The swarm client of
    /// `peer-net` passes one that keeps each name on a home peer. An extension point (see
    /// `crate::ext`), hidden.
    #[doc(hidden)]
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Where named tasks run (default: on this pool). The swarm of `peer-net` passes one
    /// that lets any peer run them; tasks running on this pool's workers that submit named
    /// tasks reach it too, through [`Client::current`]. An extension point (see
    /// `crate::ext`), hidden.
    #[doc(hidden)]
    pub fn remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Starts the worker threads.
    pub fn build(self) -> Result<Client, BuildError> {
        let me: Arc<OnceLock<Client>> = Arc::new(OnceLock::new());
        let for_workers = me.clone();
        let mut pool = Pool::builder()
            .name("peer-worker")
            .on_start(move |_| CURRENT.with(|c| *c.borrow_mut() = Some(for_workers.clone())))
            .on_stop(|_| CURRENT.with(|c| *c.borrow_mut() = None));
        if let Some(n) = self.workers {
            pool = pool.workers(n);
        }
        if let Some(bytes) = self.stack_size {
            pool = pool.stack_size(bytes);
        }
        let pool = pool.build().map_err(BuildError)?;
        let view = Client {
            pool: pool.handle().clone(),
            encode_named: self.encode_named,
            backend: self
                .backend
                .unwrap_or_else(|| Arc::new(LocalBackend::default())),
            remote: self.remote,
            probe: Probe::default(),
            _owner: None,
        };
        // Set right after the pool starts; no task can run before `build` returns a client
        // to submit it, so no worker looks before this.
        let _ = me.set(view.clone());
        Ok(Client {
            _owner: Some(Arc::new(Owner {
                remote: view.remote.clone(),
                _pool: pool,
            })),
            ..view
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("stack_size", &self.stack_size)
            .field("encode_named", &self.encode_named)
            .field("custom_backend", &self.backend.is_some())
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
