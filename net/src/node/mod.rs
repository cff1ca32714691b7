//! One peer's share of the swarm's task graph, as a sans-IO state machine.
//!
//! The [`Node`] is told what happened ([`Input`]: a submission, a finished run, a request or
//! response from another peer, a gossip batch, a peer coming or going) and says what to do
//! ([`Output`]: send a request, answer one, run a task, resolve a future, publish gossip). No
//! sockets, no clock, no threads: the event loop translates, and the tests drive it by hand.
//!
//! The node itself is a router ([`dispatch`]) over protocols that each own their state and
//! share one shape (inputs in, `poll_output` / `poll_timeout` / `handle_timeout` out):
//! [`Tasks`](tasks::Tasks) (tasks and their ownership), [`Stealing`](stealing::Stealing),
//! [`Gossip`](gossip::Gossip), [`Jobs`](jobs::Jobs) (detached jobs and published values),
//! [`Prims`](prims::Prims) (named primitives), [`Reports`](report::Reports) and the one
//! [`Membership`]; requests out of all of them go through [`Requests`](requests::Requests).
//!
//! The life of a task:
//! 1. Its owner takes it in ([`Node::submit_retrying`]); once every input is done it is *ready* and goes
//!    on the owner's ready deque. Small results of inputs travel inline; large ones as a
//!    reference to the peer that holds them.
//! 2. A ready task runs where it is (newest first), or a thief takes it (oldest first, up to
//!    half the deque, only tasks whose fingerprints the thief registers).
//! 3. The runner fetches inputs it lacks from their holders, runs the task, keeps the result
//!    and tells the owner (`Done`, with the result inline when it is small).
//! 4. The owner resolves the future (fetching a large result from its holder), makes
//!    dependents ready, and once the result is resolved and no dependent still needs to fetch
//!    it, tells the holder to release it.

mod custody;
mod dispatch;
mod drain;
mod fifo;
mod gossip;
mod jobs;
mod messages;
mod owned;
mod owner;
mod placement;
mod prims;
mod ready;
mod recovery;
mod report;
mod requests;
mod runner;
mod state;
mod stealing;
mod tasks;

pub(crate) use ready::Ready;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use peer_steal::policy;

use crate::membership::Membership;
use crate::wire::{
    Batch, CallArgs, Failure, GraphEvent, Kind, Op, Reply, Request, Response, TaskKey, TaskSpec,
};

/// Rounds of failing requests to suspects in one step, at most. One round is the rule:
/// a failed request rarely leads to another request to a suspect (a primitive's call
/// redirected to a backup that is down too). Requests still unsendable after these rounds
/// stay in `unsendable` and are failed in the next step, so the bound loses nothing; it
/// only keeps one step from running for long.
const SETTLE_ROUNDS: usize = 16;

/// A result, shared between the store, inline copies and the executor.
pub(crate) type Bytes = Arc<Vec<u8>>;

/// Tuning of a [`Node`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Tasks handed to the local pool at once, at the least (its workers and one more).
    pub(crate) slots: usize,
    /// Worker threads of the local pool.
    pub(crate) workers: usize,
    /// Work kept queued in the local pool per worker, beyond `slots`, when tasks are short:
    /// a worker that finishes a 100 µs task should not wait for the event loop to hand it
    /// the next. Tasks in the pool cannot be stolen, so tasks longer than this get no such
    /// buffer. 4 ms: W5 at 1 ms tasks took 1.096 × ideal with 1 ms, 1.063 × with 4 ms.
    pub(crate) buffer: Duration,
    /// Results up to this size travel inline with `Done` and in dependents' specs.
    pub(crate) inline_max: usize,
    /// Most tasks asked for in one steal.
    pub(crate) steal_max: u32,
    /// Requests in flight to one peer; more wait in a queue.
    pub(crate) max_in_flight: usize,
    /// Bytes of inputs fetched from other peers kept for the next task that needs them.
    pub(crate) cache_max: usize,
    /// Gossip events are batched for this long. Each batch is signed and checked: 20 ms,
    /// not 5, took W5 at 1 ms from 1.07 to 1.057 × ideal (docs/benchmarks.md). Gossip is
    /// advice, so its latency decides no result.
    pub(crate) gossip_interval: Duration,
    /// The stealing policy's tuning.
    pub(crate) policy: policy::Config,
    /// How long a home holds an operation that waits (a lock, a get from an empty queue)
    /// before it answers "ask again": well inside the request time-out.
    pub(crate) long_poll: Duration,
    /// Where this peer's own operation numbers start (the wall clock's nanoseconds, so that
    /// they are new after a restart).
    pub(crate) seq_seed: u64,
    /// Bounds on what other peers can make this one hold.
    pub(crate) limits: crate::config::Limits,
    /// Closures submitted through this peer's clients, counted by them: they run here only.
    pub(crate) local_only: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Calls of named tasks this peer's clients kept on its pool (`local_first.rs`): run
    /// here without the node, and counted in what it ran.
    pub(crate) kept_here: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether this peer may be the home of named primitives.
    pub(crate) home: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            slots: 1,
            workers: 1,
            buffer: Duration::from_millis(4),
            inline_max: 64 * 1024,
            steal_max: 64,
            max_in_flight: 64,
            cache_max: 256 << 20,
            gossip_interval: Duration::from_millis(20),
            policy: policy::Config {
                steal_timeout: Duration::from_secs(5),
                backoff_min: Duration::from_micros(500),
                backoff_max: Duration::from_millis(200),
                load_interval: Duration::from_millis(20),
                ..policy::Config::default()
            },
            long_poll: Duration::from_secs(10),
            seq_seed: 0,
            limits: crate::config::Limits::default(),
            local_only: std::sync::Arc::default(),
            kept_here: std::sync::Arc::default(),
            home: true,
        }
    }
}

/// A task this peer takes in as its owner ([`Node::submit_task`]).
#[derive(Debug)]
pub(crate) struct NewTask {
    /// `key.owner` is this peer and `key.seq` unused: the submitter numbers its tasks so
    /// it knows the key without a round trip.
    pub(crate) key: TaskKey,
    pub(crate) name: String,
    pub(crate) fingerprint: u64,
    pub(crate) args: Vec<SubmitArg>,
    /// Empty for one call; else a batch of calls of the task (see [`crate::batch`]).
    pub(crate) calls: Arc<[CallArgs]>,
    /// How many times it runs again after a panic.
    pub(crate) retries: u32,
}

impl NewTask {
    /// One call of the task, not run again after a panic.
    pub(crate) fn one(
        key: TaskKey,
        name: String,
        fingerprint: u64,
        args: Vec<SubmitArg>,
    ) -> NewTask {
        NewTask {
            key,
            name,
            fingerprint,
            args,
            calls: Arc::new([]),
            retries: 0,
        }
    }
}

/// One argument of a submitted task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubmitArg {
    /// An encoded value.
    Inline(Vec<u8>),
    /// The result of a task this peer owns.
    Owned(TaskKey),
    /// A value the submitter encodes later ([`Input::LocalArg`]).
    Local,
}

/// What the node is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// A steal from `thief` was answered without the node, from the shared ready deque
    /// ([`ready`](ready::Ready)): `tasks` left it, and the answer was written (`sent`) or
    /// not, in which case they come back.
    Gave {
        thief: u64,
        tasks: Vec<TaskSpec>,
        sent: bool,
    },
    /// A late argument of a task arrived (`Local`, or after [`Output::NeedArg`]).
    LocalArg {
        /// The task.
        task: TaskKey,
        /// Which argument.
        index: usize,
        /// The id of the future it came from (readers of one share one copy).
        source: u64,
        /// Its encoding, or why there is none.
        result: Result<Vec<u8>, Failure>,
    },
    /// A task ran here.
    Ran {
        /// The task.
        task: TaskKey,
        /// Its encoded result, or why there is none.
        result: Result<Vec<u8>, Failure>,
        /// How long the function ran (zero when it did not run).
        took: Duration,
    },
    /// Another peer asks something; answer with [`Output::Respond`] on `channel`.
    Request {
        /// Who asks.
        from: u64,
        /// The event loop's handle for the answer.
        channel: u64,
        /// What.
        request: Request,
    },
    /// The answer to our [`Output::Send`] `tag`.
    Response {
        /// Our tag.
        tag: u64,
        /// The answer.
        response: Response,
    },
    /// Our request `tag` got no answer (connection closed, time-out, refused stream).
    RequestFailed {
        /// Our tag.
        tag: u64,
        /// Why, for the logs and errors.
        error: String,
    },
    /// A gossip batch from another peer.
    Gossip(Batch),
    /// Our answer on `channel` went out (`sent`), or could not (its stream or connection
    /// failed).
    Responded {
        /// The event loop's handle of the request.
        channel: u64,
        /// Whether it went out.
        sent: bool,
    },
    /// A peer identified itself as speaking our protocol.
    Identified {
        /// The peer.
        peer: u64,
        /// Whether it may be the home of named primitives
        /// ([`Config::home`](crate::Config::home)).
        home: bool,
    },
    /// A connection to a peer opened.
    Connected(u64),
    /// The last connection to a peer closed: it is suspected.
    Disconnected {
        /// The peer.
        peer: u64,
        /// Why, for the logs and `peer status`.
        reason: String,
    },
}

/// What the event loop should do.
#[derive(Debug, PartialEq)]
pub(crate) enum Output {
    /// Send `request` to peer `to`; feed the answer back as [`Input::Response`] with `tag`.
    Send {
        /// The peer.
        to: u64,
        /// Our tag for the answer.
        tag: u64,
        /// What.
        request: Request,
    },
    /// Answer the request that came with `channel`.
    Respond {
        /// The event loop's handle.
        channel: u64,
        /// The answer.
        response: Response,
    },
    /// Run the task with these encoded arguments; feed back [`Input::Ran`].
    Run {
        /// The task.
        spec: TaskSpec,
        /// One per parameter.
        args: Vec<Bytes>,
    },
    /// The result of a task we own is known: complete its future.
    Resolve {
        /// The task.
        task: TaskKey,
        /// Its encoded result, or why there is none.
        result: Result<Bytes, Failure>,
    },
    /// Argument `index` of `task` referred to a result this peer no longer tracks: encode it
    /// from the submitter's own future and feed [`Input::LocalArg`].
    NeedArg {
        /// The task.
        task: TaskKey,
        /// Which argument.
        index: usize,
    },
    /// Publish a gossip batch.
    Publish(Batch),
    /// The answer to [`Node::prim_call`] `seq`.
    PrimReply {
        /// The call.
        seq: u64,
        /// The answer.
        reply: crate::wire::Reply,
        /// When the request answered was sent: a lease granted runs from then at the latest.
        asked: Instant,
    },
    /// The answer to [`Node::gather_reports`] `waiter`: each peer's report (or why none).
    Reports {
        /// The request.
        waiter: u64,
        /// This peer's and every connected peer's, by peer.
        reports: Vec<report::Report>,
    },
    /// A value published on a topic by another peer: hand it to this peer's subscribers.
    TopicMessage {
        /// The topic's key.
        key: String,
        /// The encoded value.
        value: Vec<u8>,
    },
    /// A peer suspected long ago is forgotten here: forget it too.
    Forget(u64),
    /// Ping `peer` this often from now on (`None`: stop pinging it); each answer is
    /// [`Node::heard`].
    Watch {
        /// The peer.
        peer: u64,
        /// How often.
        interval: Option<Duration>,
    },
    /// The answer to [`Node::lookup`] `waiter`: the published value, if any peer had it.
    Found {
        /// The lookup.
        waiter: u64,
        /// The value, or the failure of the job that was to publish it.
        value: Option<Result<Vec<u8>, Failure>>,
    },
}

/// A peer suspected, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// The peer.
    pub(crate) peer: u64,
    /// When it was suspected.
    pub(crate) at: Instant,
    /// Why.
    pub(crate) reason: String,
    /// Tasks owned here that were queued or running there, or whose result was only there,
    /// queued again.
    pub(crate) requeued: usize,
}

/// Counters of what the node did, for `peer status`, the demo and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks submitted here (to the swarm: calls kept on this peer's pool are not).
    pub submitted: u64,
    /// Tasks run here (each call of a batch counts), with the calls this peer's clients
    /// kept on its pool, counted as they are kept
    /// ([`Status::kept_here`](crate::Status::kept_here)).
    pub ran: u64,
    /// Tasks received by stealing.
    pub stolen: u64,
    /// Tasks given to thieves.
    pub given: u64,
    /// Steal requests sent.
    pub steal_requests: u64,
    /// Steal requests that brought nothing.
    pub failed_steals: u64,
    /// Results fetched from other peers.
    pub fetches: u64,
    /// Results held here now.
    pub held: u64,
    /// Inputs fetched from other peers and kept for further tasks.
    pub cached: u64,
    /// Round trips of answered steal requests.
    pub steal_round_trip: Latency,
    /// Tasks owned here and not yet finished and released.
    pub owned: u64,
    /// Ready tasks waiting here.
    pub ready: u64,
    /// Peers suspected.
    pub suspicions: u64,
    /// Owned tasks queued again because a suspect had them or their result.
    pub requeued: u64,
    /// Owned tasks run again, their lost inputs included.
    pub reruns: u64,
    /// Detached jobs adopted from a suspected owner.
    pub adopted: u64,
    /// Tasks running here now (handed to the local pool).
    pub running: u64,
    /// Queued tasks handed back to their owners while draining.
    pub handed_back: u64,
    /// Whether this peer is draining (leaving the swarm).
    pub draining: bool,
    /// Requests sent to other peers, of every kind (each answered by one response).
    pub requests_sent: u64,
    /// Requests received from other peers.
    pub requests_received: u64,
    /// Batches of task-graph gossip published.
    pub gossip_sent: u64,
    /// Batches of task-graph gossip received from other peers.
    pub gossip_received: u64,
}

/// A summary of measured durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// How many were measured.
    pub count: u64,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The longest.
    pub max: Duration,
    /// All of them added up (from the histogram, to its 3 significant digits): with
    /// `count`, what a benchmark needs to average over a window of measurements.
    pub total: Duration,
}

impl Latency {
    /// Summarises a histogram of nanoseconds.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Latency {
        Latency {
            count: histogram.len(),
            p50: Duration::from_nanos(histogram.value_at_quantile(0.5)),
            p99: Duration::from_nanos(histogram.value_at_quantile(0.99)),
            max: Duration::from_nanos(histogram.max()),
            total: Duration::from_secs_f64(histogram.mean() * histogram.len() as f64 / 1e9),
        }
    }
}

/// Messages the router counts; the protocols count the rest of [`Stats`].
#[derive(Debug, Default)]
struct Traffic {
    requests_sent: u64,
    requests_received: u64,
    gossip_sent: u64,
    gossip_received: u64,
}

/// One peer's share of the task graph; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Node {
    me: u64,
    settings: Settings,
    /// Stealing: the policy, lifelines, steal answers in flight.
    /// Tasks and their ownership: owned, ready, running, held, notices, recovery.
    tasks: tasks::Tasks,
    /// Stealing: the policy, lifelines, steal answers in flight.
    stealing: stealing::Stealing,
    /// Requests out, of every protocol.
    requests: requests::Requests,
    /// The task-graph gossip: batches out, admission of others' batches.
    gossip: gossip::Gossip,
    /// Who is up, who is suspected, whom to watch.
    membership: Membership,
    /// Detached jobs, published values and lookups.
    jobs: jobs::Jobs,
    /// Named primitives: those homed here, copies kept as a backup, this peer's calls.
    prims: prims::Prims,
    /// Reports being gathered for `peer status`.
    reports: report::Reports,
    /// Requests and gossip counted here; the protocols count the rest.
    traffic: Traffic,
    outputs: VecDeque<Output>,
}

impl Node {
    /// The node of peer `me`, which can run the named tasks with fingerprints `can_run`.
    pub(crate) fn new(me: u64, mut can_run: Vec<u64>, settings: Settings) -> Node {
        can_run.sort_unstable();
        can_run.dedup();
        let stealing = (stealing::Stealing::new)(
            me,
            settings.policy.clone(),
            can_run.clone(),
            settings.steal_max,
        );
        let gossip = gossip::Gossip::new(me, settings.gossip_interval);
        let prims = prims::Prims::new(me, &settings);
        let jobs = jobs::Jobs::new(me, settings.limits);
        let requests = requests::Requests::new(settings.max_in_flight);
        let tasks = tasks::Tasks::new(me, can_run, settings.clone());
        Node {
            me,
            settings,
            tasks,
            stealing,
            requests,
            gossip,
            membership: Membership::new(me),
            jobs,
            prims,
            reports: report::Reports::default(),
            traffic: Traffic::default(),
            outputs: VecDeque::new(),
        }
    }

    /// Runs the tasks of these fingerprints too, but only this peer's own.
    pub(crate) fn running_own(mut self, mut fingerprints: Vec<u64>) -> Node {
        fingerprints.sort_unstable();
        fingerprints.dedup();
        self.tasks.own_only = fingerprints;
        self
    }

    /// What the node did so far.
    /// This peer's number.
    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    pub(crate) fn stats(&self) -> Stats {
        let tasks = &self.tasks;
        Stats {
            held: tasks.store.len() as u64,
            cached: tasks.cache.len() as u64,
            steal_round_trip: self.stealing.round_trips(),
            steal_requests: self.stealing.requests,
            failed_steals: self.stealing.failed,
            owned: tasks.owned.len() as u64,
            ready: tasks.ready.len() as u64,
            running: tasks.running as u64,
            draining: tasks.draining,
            adopted: self.jobs.adopted,
            requests_sent: self.traffic.requests_sent,
            requests_received: self.traffic.requests_received,
            gossip_sent: self.traffic.gossip_sent,
            gossip_received: self.traffic.gossip_received,
            ran: tasks.stats.ran + self.kept_here(),
            ..tasks.stats
        }
    }

    /// Takes in a task this peer owns. `key.owner` must be [`me`](Node::me) and `key.seq`
    /// unused; the submitter numbers its tasks so it knows the key without a round trip.
    #[cfg(test)]
    pub(crate) fn submit(
        &mut self,
        key: TaskKey,
        name: String,
        fingerprint: u64,
        args: Vec<SubmitArg>,
        now: Instant,
    ) {
        self.submit_task(NewTask::one(key, name, fingerprint, args), now);
    }

    /// Takes in a task this peer owns.
    pub(crate) fn submit_task(&mut self, task: NewTask, now: Instant) {
        self.tasks.take_in(task, now);
        self.after(now);
    }

    /// A batch run here held `more` calls than the one task that counts as run.
    pub(crate) fn ran_calls(&mut self, more: usize) {
        self.tasks.stats.ran += more as u64;
    }

    /// Feeds one observation.
    pub(crate) fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::LocalArg {
                task,
                index,
                source,
                result,
            } => self.tasks.local_arg(task, index, source, result, now),
            Input::Ran { task, result, took } => {
                self.tasks.measure_run(took);
                (self.tasks).ran(&self.membership, task, result, now);
            }
            Input::Request {
                from,
                channel,
                request,
            } => self.request(from, channel, request, now),
            Input::Response { tag, response } => self.response(tag, Ok(response), now),
            Input::RequestFailed { tag, error } => self.response(tag, Err(error), now),
            Input::Gossip(batch) => {
                self.traffic.gossip_received += 1;
                self.gossip_in(batch, now);
            }
            Input::Gave { thief, tasks, sent } => {
                self.traffic.requests_received += 1;
                self.tasks.ready.recorded(&tasks);
                if sent {
                    // A thief has nothing ready.
                    self.stealing.load(thief, 0, now);
                    self.tasks.gave(&self.membership, thief, &tasks, now);
                } else {
                    self.tasks.requeue(&self.membership, tasks, now);
                }
            }
            Input::Responded { channel, sent } => {
                if let Some(tasks) = self.stealing.answer_sent(channel, sent) {
                    self.tasks.push_refused(&self.membership, tasks, now);
                }
            }
            Input::Identified { peer, home } => {
                self.membership.identified(peer, home);
                self.apply_membership(now);
            }
            Input::Connected(peer) => self.membership.connection(peer, true),
            Input::Disconnected { peer, reason } => {
                self.membership.connection(peer, false);
                self.membership.suspect(peer, reason, now);
                self.apply_membership(now);
            }
        }
        self.after(now);
    }

    /// `peer` showed it is alive (a message, a ping answered): a suspect is back. Cheap
    /// unless that changes something: the event loop calls it for every message.
    pub(crate) fn heard(&mut self, peer: u64, now: Instant) {
        self.membership.heard(peer, now);
        if self.apply_membership(now) {
            self.after(now);
        }
    }

    /// Whether `peer` identified as a member (up or suspected).
    pub(crate) fn is_member(&self, peer: u64) -> bool {
        self.membership.is_member(peer)
    }

    /// Whether `peer` is up.
    pub(crate) fn is_up(&self, peer: u64) -> bool {
        self.membership.is_up(peer)
    }

    /// Members up now.
    pub(crate) fn peers_up(&self) -> usize {
        self.membership.up().len()
    }

    /// When [`handle_watch_timeout`](Node::handle_watch_timeout) should next be called:
    /// silences checked, whom to watch decided. `None`: at once (the watch has not begun).
    /// Apart from [`poll_timeout`](Node::poll_timeout) because it runs on the real clock:
    /// tests that drive the node by hand leave it out, or their jumps in time would look
    /// like silences.
    pub(crate) fn watch_timeout(&self) -> Option<Instant> {
        self.membership.poll_timeout()
    }

    /// Checks silences and decides again whom to watch ([`crate::liveness`]).
    pub(crate) fn handle_watch_timeout(&mut self, now: Instant) {
        let business = self.membership.plan_due(now).then(|| self.business());
        (self.membership).handle_timeout(now, || business.unwrap_or_default());
        if self.apply_membership(now) {
            self.after(now);
        }
    }

    /// Peers suspected lately (the last 1,024), oldest first.
    pub(crate) fn recoveries(&self) -> &[Recovery] {
        &self.tasks.recoveries
    }

    /// Ends what timed out in any protocol, then takes the step every input ends with.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.stealing.handle_timeout(now);
        // Held notices whose retry or hold is due go in `after`.
        (self.tasks).handle_timeout(&self.membership, self.requests.pending(), now);
        if self.forget_due().is_some_and(|due| due <= now) {
            self.forget_gone(now);
        }
        self.gossip.handle_timeout(now);
        self.prims.handle_timeout(now);
        self.after(now);
    }

    /// The ready deque, shared with the tasks that answer steals on links.
    pub(crate) fn ready(&self) -> Ready {
        self.tasks.ready.clone()
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if let Some((waiter, reports)) = self.reports.poll_output() {
            return Some(Output::Reports { waiter, reports });
        }
        let batch = self.gossip.poll_output()?;
        self.traffic.gossip_sent += 1;
        Some(Output::Publish(batch))
    }

    /// When [`handle_timeout`](Node::handle_timeout) should next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.stealing.poll_timeout(),
            self.gossip.poll_timeout(),
            self.tasks.poll_timeout(&self.membership),
            self.forget_due(),
            self.prims.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// After every step: start what can run, tell the policy our load, drain its outputs.
    fn after(&mut self, now: Instant) {
        // Failing a request to a suspect can start or queue more work, which can mean more
        // requests to suspects; a few rounds settle it (each failed request ends its own).
        for _ in 0..SETTLE_ROUNDS {
            self.carry_out(now);
            self.prims.step(&self.membership, now);
            self.carry_out(now);
            self.fail_unsendable(now);
            let members = &self.membership;
            self.tasks.give_back(members, now);
            self.tasks.dispatch(members, now);
            self.tasks.flush_notices(members, now);
            // What they sent, and what failed requests answered or sent again.
            self.carry_out(now);
            if !self.requests.any_unsendable() {
                break;
            }
        }
        self.steal_step(now);
    }

    /// An operation of this peer's client, numbered `seq` by it; answered with
    /// [`Output::PrimReply`].
    pub(crate) fn prim_call(&mut self, seq: u64, key: String, kind: Kind, op: Op, now: Instant) {
        self.prims.call(&self.membership, seq, key, kind, op, now);
        self.after(now);
    }

    /// Gives back what a withdrawn call was granted after its client stopped waiting (the
    /// answer reached the client's slot too late).
    pub(crate) fn prim_undo(
        &mut self,
        key: String,
        kind: Kind,
        op: &Op,
        reply: &Reply,
        now: Instant,
    ) {
        self.prims.undo(&self.membership, key, kind, op, reply, now);
        self.after(now);
    }

    /// The client withdrew call `seq`: a waiting one leaves the line; anything it was
    /// granted meanwhile is given back.
    pub(crate) fn prim_cancel(&mut self, seq: u64, now: Instant) {
        self.prims.cancel(&self.membership, seq, now);
        self.after(now);
    }

    /// This peer is about to leave: the backups of the keys it hosts get their whole state
    /// once more; [`Node::handed_off`] says when they have it.
    /// Gossip waiting for its batch goes now too: a job detached or a value published
    /// just before the stop must not wait 20 ms for a peer that is leaving.
    pub(crate) fn hand_off(&mut self, now: Instant) {
        self.prims.hand_off(&self.membership, now);
        self.gossip.flush();
        self.after(now);
    }

    /// Whether the backup of every key this peer hosts has all of its changes.
    pub(crate) fn handed_off(&self) -> bool {
        self.prims.handed_off()
    }

    /// The peers in the order they would be home of `key`: the home first, then its backup.
    pub(crate) fn ranked_homes(&self, key: &str) -> Vec<u64> {
        self.prims.ranked_homes(&self.membership, key)
    }

    /// Takes in a detached job this peer submits.
    pub(crate) fn detach(
        &mut self,
        spec: crate::wire::JobSpec,
        now: Instant,
    ) -> Result<(), String> {
        self.jobs.detach(spec)?;
        self.after(now);
        Ok(())
    }

    /// Publishes `value` under `name` (the first value under a name is kept).
    pub(crate) fn publish(&mut self, name: String, value: Result<Vec<u8>, Failure>, now: Instant) {
        self.jobs.publish(name, value);
        self.after(now);
    }

    /// Looks up the value published under `name`: answers [`Output::Found`] for `waiter`,
    /// asking the peers that are up when this peer does not know it.
    pub(crate) fn lookup(&mut self, name: String, waiter: u64, now: Instant) {
        self.jobs.lookup(&self.membership, name, waiter);
        self.after(now);
    }

    /// Publishes a topic value to every peer's subscribers.
    pub(crate) fn topic_publish(&mut self, key: String, value: Vec<u8>, now: Instant) {
        self.gossip.push(GraphEvent::Topic { key, value }, now);
        self.after(now);
    }
}
