//! UTS against the exact oracle of `docs/workloads.md`: test vectors, T1 and T3 counts
//! sequentially and as tasks on the local runtime.

use peer_core::Client;
use peer_workloads::uts::{self, Counts, Node, T1, T3};
use sha1::{Digest, Sha1};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn expected(name: &str) -> Counts {
    uts::known(name).unwrap().counts
}

#[test]
fn test_vectors() {
    let params = uts::Params { r: 19, ..T1 };
    let root = uts::root(&params);
    assert_eq!(hex(&root.state), "c6988ab70cc9559ae4d6cba254e29a845a85f86b");
    assert_eq!(root.height, 0);
    let child0 = uts::child(&root, 0);
    assert_eq!(
        hex(&child0.state),
        "2fb3131030280c1617a81d6a49c1e29effb19645"
    );
    assert_eq!(child0.height, 1);
    let root0 = uts::root(&uts::Params { r: 0, ..T1 });
    assert_eq!(
        hex(&root0.state),
        "6768033e216468247bd031a0a2d9876d79818f8f"
    );
}

#[test]
fn children_iterator_matches_child() {
    let root = uts::root(&T1);
    let n = uts::num_children(&T1, &root);
    let kids: Vec<Node> = uts::children(&T1, &root).collect();
    assert_eq!(kids.len(), n as usize);
    for (i, kid) in kids.iter().enumerate() {
        assert_eq!(*kid, uts::child(&root, i as u32));
    }
}

#[test]
fn one_block_sha1_matches_the_digest_api() {
    for len in 0..=55usize {
        let msg: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        let reference: [u8; 20] = Sha1::digest(&msg).into();
        assert_eq!(uts::sha1_short(&msg), reference, "length {len}");
    }
}

#[test]
fn bin_root_has_floor_b0_children() {
    assert_eq!(uts::num_children(&T3, &uts::root(&T3)), 2000);
}

#[test]
fn t1_sequential() {
    assert_eq!(uts::sequential(&T1), expected("T1"));
}

#[test]
fn t3_sequential() {
    assert_eq!(uts::sequential(&T3), expected("T3"));
}

fn on_workers(params: &uts::Params, workers: usize, chunk: usize) -> Counts {
    let client = Client::builder().workers(workers).build().unwrap();
    uts::on_client(&client, params, chunk).unwrap()
}

#[test]
fn t1_one_worker() {
    assert_eq!(on_workers(&T1, 1, 4096), expected("T1"));
}

#[test]
fn t1_two_workers() {
    assert_eq!(on_workers(&T1, 2, 4096), expected("T1"));
}

#[test]
fn t3_one_worker() {
    assert_eq!(on_workers(&T3, 1, 4096), expected("T3"));
}

#[test]
fn t3_two_workers() {
    assert_eq!(on_workers(&T3, 2, 4096), expected("T3"));
}

#[test]
fn small_chunks_and_wide_splits_stay_exact() {
    // Many tiny tasks: every split path, still exact.
    let client = Client::builder().workers(2).build().unwrap();
    let params = uts::Params { gen_mx: 6, ..T1 };
    let want = uts::sequential(&params);
    for (chunk, split) in [(1, 1), (1, 2), (7, 3), (64, 8)] {
        assert_eq!(
            uts::on_client_split(&client, &params, chunk, split).unwrap(),
            want,
            "chunk {chunk}, split {split}"
        );
    }
}

#[test]
fn driver_inside_a_task() {
    let client = Client::builder().workers(2).build().unwrap();
    let params = uts::Params { gen_mx: 7, ..T1 };
    let want = uts::sequential(&params);
    let got = *client
        .submit_local(move || {
            Client::with_current(|c| uts::on_client(c, &params, 256).unwrap()).unwrap()
        })
        .wait()
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn named_tasks_that_submit_tasks_count_exactly_on_a_local_client() {
    use peer_workloads::swarm_uts;
    // The code that runs across a swarm, on one process: tasks wait for the tasks they
    // submit, helping meanwhile, on one worker as on two, and through the encoded path.
    for (workers, encode) in [(1, false), (2, false), (2, true)] {
        let client = Client::builder()
            .workers(workers)
            .encode_named_tasks(encode)
            .build()
            .unwrap();
        for (tree, chunk, split) in [("T1", 4096, 4), ("T3", 512, 2), ("T3", 64, 8)] {
            let got = swarm_uts::on_client(&client, tree, chunk, split).unwrap();
            assert_eq!(
                got,
                expected(tree),
                "{tree}, {workers} workers, chunk {chunk}"
            );
        }
    }
    let client = Client::builder().workers(1).build().unwrap();
    let error = swarm_uts::on_client(&client, "T9", 10, 2).unwrap_err();
    assert!(error.to_string().contains("unknown UTS tree"), "{error}");
}
