//! UTS (Unbalanced Tree Search): an exact, SHA-1 driven implicit tree.
//!
//! Every node carries a 20-byte SHA-1 digest as its random state; the root is
//! `SHA1(16 zero bytes ‖ BE32(r))` and child `i` is `SHA1(parent ‖ BE32(i))`. The number of
//! children follows from the state, the height and the [`Params`], so the whole tree (and its
//! node, leaf and depth counts) is fixed by the parameters. [`T1`], [`T3`], [`T1L`] and
//! [`T3L`] are the trees of `docs/workloads.md` with their known counts.
//!
//! # Sequential
//!
//! [`sequential`] is an iterative depth-first search with an explicit stack.
//!
//! # As tasks
//!
//! [`on_client`] runs the search as tasks that spawn tasks, the canonical dynamic and
//! unbalanced workload:
//!
//! - A task receives a frontier (nodes not yet visited), visits up to `chunk` nodes depth
//!   first with a local stack, and if nodes remain on its stack it splits them round-robin
//!   into up to [`DEFAULT_SPLIT`] new frontiers and submits each as a new task with
//!   [`Client::with_current`]. The task returns the [`Counts`] of the nodes it visited.
//! - Every spawned task's [`TaskFuture`] is pushed into one shared list *before* the spawning
//!   task returns. The driver repeatedly takes the whole list and waits for each future,
//!   merging its counts. When it finds the list empty, every future it ever took has completed,
//!   and each of those pushed its children's futures before completing, so no task is left:
//!   each node is visited by exactly one task and counted exactly once.
//! - A failed task (a panic) fails the whole search with its [`TaskError`] instead of giving
//!   wrong counts.
//!
//! The list is touched once per task (a push) and once per batch (the driver's take), and
//! tasks are thousands of nodes long, so the bookkeeping is a small fraction of the hashing.

use std::sync::{Arc, Mutex, PoisonError};

use peer_core::{Client, TaskError, TaskFuture};

/// Shape of the expected branching factor of a GEO tree by height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `b0·(1 − h/gen_mx)`.
    Linear,
    /// `b0·h^(−ln b0 / ln gen_mx)`.
    ExpDec,
    /// `b0^sin(2π·h/gen_mx)`, and no children beyond height `5·gen_mx`.
    Cyclic,
    /// `b0` below height `gen_mx`, then no children.
    Fixed,
}

/// Kind of tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// Geometric number of children with expected value given by the shape.
    Geo(Shape),
    /// Binomial: the root has `floor(b0)` children, every other node `m` with probability `q`.
    Bin,
    /// GEO (with this shape) while `h < 0.5·gen_mx`, then BIN.
    Hybrid(Shape),
}

/// The parameters that fix a UTS tree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Kind of tree (and GEO shape).
    pub tree: Tree,
    /// Root branching factor (GEO: expected children at the root and per the shape).
    pub b0: f64,
    /// GEO: the height the shape is scaled to.
    pub gen_mx: u32,
    /// BIN: probability that a non-root node has children.
    pub q: f64,
    /// BIN: number of children of a non-root node that has any.
    pub m: u32,
    /// Root seed.
    pub r: u32,
}

/// A tree's expected counts, as listed in `docs/workloads.md`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Known {
    /// Tree name, e.g. `"T1"`.
    pub name: &'static str,
    /// The tree.
    pub params: Params,
    /// Its exact counts.
    pub counts: Counts,
}

/// T1: GEO fixed, b0 = 4, gen_mx = 10, r = 19 (4,130,071 nodes).
pub const T1: Params = Params {
    tree: Tree::Geo(Shape::Fixed),
    b0: 4.0,
    gen_mx: 10,
    q: 0.0,
    m: 0,
    r: 19,
};

/// T3: BIN, b0 = 2000, q = 0.124875, m = 8, r = 42 (4,112,897 nodes).
pub const T3: Params = Params {
    tree: Tree::Bin,
    b0: 2000.0,
    gen_mx: 0,
    q: 0.124875,
    m: 8,
    r: 42,
};

/// T1L: GEO fixed, b0 = 4, gen_mx = 13, r = 29 (102,181,082 nodes).
pub const T1L: Params = Params {
    tree: Tree::Geo(Shape::Fixed),
    b0: 4.0,
    gen_mx: 13,
    q: 0.0,
    m: 0,
    r: 29,
};

/// T3L: BIN, b0 = 2000, q = 0.200014, m = 5, r = 7 (111,345,631 nodes).
pub const T3L: Params = Params {
    tree: Tree::Bin,
    b0: 2000.0,
    gen_mx: 0,
    q: 0.200014,
    m: 5,
    r: 7,
};

/// The named trees of `docs/workloads.md` with their exact counts.
pub const KNOWN: [Known; 4] = [
    Known {
        name: "T1",
        params: T1,
        counts: Counts {
            nodes: 4_130_071,
            leaves: 3_305_118,
            max_depth: 10,
        },
    },
    Known {
        name: "T3",
        params: T3,
        counts: Counts {
            nodes: 4_112_897,
            leaves: 3_599_034,
            max_depth: 1_572,
        },
    },
    Known {
        name: "T1L",
        params: T1L,
        counts: Counts {
            nodes: 102_181_082,
            leaves: 81_746_377,
            max_depth: 13,
        },
    },
    Known {
        name: "T3L",
        params: T3L,
        counts: Counts {
            nodes: 111_345_631,
            leaves: 89_076_904,
            max_depth: 17_844,
        },
    },
];

/// The known tree called `name` (`"T1"`, `"T3"`, `"T1L"`, `"T3L"`; case-insensitive).
pub fn known(name: &str) -> Option<Known> {
    KNOWN
        .iter()
        .find(|k| k.name.eq_ignore_ascii_case(name))
        .copied()
}

/// Children of any node other than a BIN root are capped at this many.
pub const MAX_CHILDREN: u32 = 100;

/// Default number of tasks a task's leftover frontier is split into.
pub const DEFAULT_SPLIT: usize = 2;

/// A tree node: its random state and its height (the root is at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// SHA-1 digest that determines the node's children.
    pub state: [u8; 20],
    /// Distance from the root.
    pub height: u32,
}

/// Node, leaf and depth counts of a (part of a) tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Nodes visited.
    pub nodes: u64,
    /// Visited nodes without children.
    pub leaves: u64,
    /// Greatest height of a visited node.
    pub max_depth: u32,
}

impl Counts {
    /// Adds `other`'s counts to these (depth: the greater).
    pub fn merge(&mut self, other: &Counts) {
        self.nodes += other.nodes;
        self.leaves += other.leaves;
        self.max_depth = self.max_depth.max(other.max_depth);
    }
}

const SHA1_H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// One padded SHA-1 block holding a `len`-byte message; `len` ≤ 55.
fn padded_block(msg: &[u8]) -> [u8; 64] {
    assert!(msg.len() <= 55, "a one-block message has at most 55 bytes");
    let mut block = [0u8; 64];
    block[..msg.len()].copy_from_slice(msg);
    block[msg.len()] = 0x80;
    block[56..].copy_from_slice(&((msg.len() as u64) * 8).to_be_bytes());
    block
}

/// SHA-1 of a message already padded into one block.
#[inline]
fn digest_block(block: &[u8; 64]) -> [u8; 20] {
    let mut h = SHA1_H0;
    sha1::block_api::compress(&mut h, std::slice::from_ref(block));
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// SHA-1 of a short message (≤ 55 bytes) through the one-block fast path used by the search.
pub fn sha1_short(msg: &[u8]) -> [u8; 20] {
    digest_block(&padded_block(msg))
}

/// The root of the tree: state `SHA1(16 zero bytes ‖ BE32(r))`, height 0.
pub fn root(params: &Params) -> Node {
    let mut msg = [0u8; 20];
    msg[16..].copy_from_slice(&params.r.to_be_bytes());
    Node {
        state: sha1_short(&msg),
        height: 0,
    }
}

/// Child `i` of `node`: state `SHA1(parent ‖ BE32(i))`, one level down.
pub fn child(node: &Node, i: u32) -> Node {
    let mut msg = [0u8; 24];
    msg[..20].copy_from_slice(&node.state);
    msg[20..].copy_from_slice(&i.to_be_bytes());
    Node {
        state: sha1_short(&msg),
        height: node.height + 1,
    }
}

/// The node's uniform value in `[0, 1)`: `(BE32(state[16..20]) & 0x7FFF_FFFF) / 2^31`.
fn uniform(node: &Node) -> f64 {
    let v = u32::from_be_bytes([
        node.state[16],
        node.state[17],
        node.state[18],
        node.state[19],
    ]) & 0x7FFF_FFFF;
    f64::from(v) / 2_147_483_648.0
}

fn geo_children(params: &Params, shape: Shape, node: &Node) -> u32 {
    let b0 = params.b0;
    let h = f64::from(node.height);
    let gen_mx = f64::from(params.gen_mx);
    let b = if node.height == 0 {
        b0
    } else {
        match shape {
            Shape::Linear => b0 * (1.0 - h / gen_mx),
            Shape::ExpDec => b0 * h.powf(-b0.ln() / gen_mx.ln()),
            Shape::Cyclic => {
                if h > 5.0 * gen_mx {
                    0.0
                } else {
                    b0.powf((2.0 * std::f64::consts::PI * h / gen_mx).sin())
                }
            }
            Shape::Fixed => {
                if node.height < params.gen_mx {
                    b0
                } else {
                    0.0
                }
            }
        }
    };
    if b <= 0.0 {
        return 0;
    }
    let p = 1.0 / (1.0 + b);
    let u = uniform(node);
    // `as` saturates: a huge count is capped below anyway.
    ((1.0 - u).ln() / (1.0 - p).ln()).floor() as u32
}

fn bin_children(params: &Params, node: &Node) -> u32 {
    if uniform(node) < params.q {
        params.m
    } else {
        0
    }
}

/// Number of children of `node`.
pub fn num_children(params: &Params, node: &Node) -> u32 {
    match params.tree {
        Tree::Bin if node.height == 0 => {
            // Only a BIN root may exceed MAX_CHILDREN; it is capped at ceil(b0).
            (params.b0.floor() as u32).min(params.b0.ceil() as u32)
        }
        Tree::Bin => bin_children(params, node).min(MAX_CHILDREN),
        Tree::Geo(shape) => geo_children(params, shape, node).min(MAX_CHILDREN),
        Tree::Hybrid(shape) => {
            let n = if f64::from(node.height) < 0.5 * f64::from(params.gen_mx) {
                geo_children(params, shape, node)
            } else {
                bin_children(params, node)
            };
            n.min(MAX_CHILDREN)
        }
    }
}

/// The children of `node`, in order 0, 1, ...
pub fn children(params: &Params, node: &Node) -> impl Iterator<Item = Node> + use<> {
    let n = num_children(params, node);
    let mut msg = [0u8; 24];
    msg[..20].copy_from_slice(&node.state);
    let mut block = padded_block(&msg);
    let height = node.height + 1;
    (0..n).map(move |i| {
        block[20..24].copy_from_slice(&i.to_be_bytes());
        Node {
            state: digest_block(&block),
            height,
        }
    })
}

/// Visits up to `budget` nodes from `stack` depth first (pushing their children onto it) and
/// adds them to `counts`. Nodes left on the stack are not yet visited.
pub fn explore(params: &Params, stack: &mut Vec<Node>, budget: u64, counts: &mut Counts) {
    let mut visited = 0;
    while visited < budget {
        let Some(node) = stack.pop() else { break };
        visited += 1;
        counts.max_depth = counts.max_depth.max(node.height);
        let before = stack.len();
        stack.extend(children(params, &node));
        if stack.len() == before {
            counts.leaves += 1;
        }
    }
    counts.nodes += visited;
}

/// Counts the whole tree on this thread: iterative DFS with an explicit stack.
pub fn sequential(params: &Params) -> Counts {
    let mut counts = Counts::default();
    let mut stack = vec![root(params)];
    explore(params, &mut stack, u64::MAX, &mut counts);
    counts
}

/// State shared by the tasks of one search.
struct Search {
    params: Params,
    chunk: u64,
    split: usize,
    /// Futures of spawned tasks the driver has not taken yet.
    spawned: Mutex<Vec<TaskFuture<Counts>>>,
}

impl Search {
    fn spawn(self: &Arc<Self>, client: &Client, frontier: Vec<Node>) {
        let search = self.clone();
        let future = client.submit_local(move || search.run(frontier));
        self.spawned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(future);
    }

    /// One task: visit up to `chunk` nodes, then hand what is left to new tasks.
    fn run(self: &Arc<Self>, mut stack: Vec<Node>) -> Counts {
        let mut counts = Counts::default();
        explore(&self.params, &mut stack, self.chunk, &mut counts);
        if !stack.is_empty() {
            let parts = self.split.min(stack.len());
            let submitted = Client::with_current(|client| {
                if parts == 1 {
                    self.spawn(client, stack);
                    return;
                }
                for k in 0..parts {
                    let part: Vec<Node> = stack.iter().skip(k).step_by(parts).copied().collect();
                    self.spawn(client, part);
                }
            });
            assert!(submitted.is_some(), "UTS tasks run on a peer worker");
        }
        counts
    }
}

/// Counts the whole tree as tasks on `client`, each visiting up to `chunk` nodes and splitting
/// what is left into [`DEFAULT_SPLIT`] new tasks (see the [module docs](self)).
///
/// Fails with the first failed task's error (a task panicked, or the pool shut down).
pub fn on_client(client: &Client, params: &Params, chunk: usize) -> Result<Counts, TaskError> {
    on_client_split(client, params, chunk, DEFAULT_SPLIT)
}

/// Like [`on_client`], splitting a task's leftover frontier into up to `split` new tasks.
///
/// # Panics
///
/// If `chunk` or `split` is 0.
pub fn on_client_split(
    client: &Client,
    params: &Params,
    chunk: usize,
    split: usize,
) -> Result<Counts, TaskError> {
    assert!(chunk > 0, "a task must visit at least one node");
    assert!(split > 0, "leftover work must go to at least one task");
    let search = Arc::new(Search {
        params: *params,
        chunk: chunk as u64,
        split,
        spawned: Mutex::new(Vec::new()),
    });
    search.spawn(client, vec![root(params)]);
    let mut total = Counts::default();
    loop {
        let batch = std::mem::take(
            &mut *search
                .spawned
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if batch.is_empty() {
            return Ok(total);
        }
        for future in batch {
            total.merge(future.wait()?);
        }
    }
}
