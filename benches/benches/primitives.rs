//! Issue 4's primitives against `tokio::sync`, uncontended, in one criterion group each:
//! lock then unlock, and put then get on a bounded queue, from a plain thread.
//!
//! `cargo bench -p peer-benches --bench primitives`

use criterion::{Criterion, Throughput};
use peer_core::Client;

const OPS: u64 = 10_000;

fn lock_unlock(c: &mut Criterion) {
    let client = Client::builder().workers(2).build().unwrap();
    let lock = client.lock("bench");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tokio_mutex = tokio::sync::Mutex::new(());
    let mut group = c.benchmark_group("lock_unlock");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function("peer_try_lock", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                drop(lock.blocking_try_lock().unwrap());
            }
        })
    });
    group.bench_function("peer_blocking_lock", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                drop(lock.blocking_lock());
            }
        })
    });
    group.bench_function("peer_async_lock", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..OPS {
                    drop(lock.lock().await);
                }
            })
        })
    });
    group.bench_function("tokio_mutex_async", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..OPS {
                    drop(tokio_mutex.lock().await);
                }
            })
        })
    });
    group.bench_function("tokio_mutex_try_lock", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                drop(tokio_mutex.try_lock().unwrap());
            }
        })
    });
    group.finish();
}

fn queue_put_get(c: &mut Criterion) {
    let client = Client::builder().workers(2).build().unwrap();
    let queue = client.queue::<u64>("bench", 1024);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let mut group = c.benchmark_group("queue_put_get");
    group.throughput(Throughput::Elements(OPS));
    group.bench_function("peer_try", |b| {
        b.iter(|| {
            for i in 0..OPS {
                queue.blocking_try_put(i).unwrap();
                std::hint::black_box(queue.blocking_try_get().unwrap());
            }
        })
    });
    group.bench_function("peer_async", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..OPS {
                    queue.put(i).await.unwrap();
                    std::hint::black_box(queue.get().await.unwrap());
                }
            })
        })
    });
    group.bench_function("tokio_mpsc_async", |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..OPS {
                    tx.send(i).await.unwrap();
                    std::hint::black_box(rx.recv().await.unwrap());
                }
            })
        })
    });
    group.bench_function("tokio_mpsc_try", |b| {
        b.iter(|| {
            for i in 0..OPS {
                tx.try_send(i).unwrap();
                std::hint::black_box(rx.try_recv().unwrap());
            }
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lock_unlock(&mut c);
    queue_put_get(&mut c);
    c.final_summary();
}
