//! Named tasks: the registry path and every way it can fail, on one machine.

use peer_core::ext::CallError;
use peer_core::named::{Args, NamedTask, registry};
use peer_core::{Client, TaskError, TaskFuture, task};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Param {
    weight: f64,
    label: String,
}

#[task]
fn load(file: u32) -> Vec<f64> {
    (0..100).map(|i| f64::from(file * 100 + i)).collect()
}

#[task]
fn score(param: Param, data: &Vec<f64>) -> f64 {
    data.iter().map(|x| x * param.weight).sum::<f64>() + param.label.len() as f64
}

#[task(name = "tests.named.add", handle = Add)]
fn add_numbers(a: u64, b: &u64) -> u64 {
    a + b
}

#[task]
fn constant() -> u32 {
    7
}

#[task]
fn describe(text: &String) -> String {
    format!("<{text}>")
}

#[task]
fn fail_on(n: &u32) -> u32 {
    if *n == 13 {
        panic!("unlucky {n}");
    }
    *n
}

#[task(name = "tests.named.dup")]
fn dup_a() -> u8 {
    1
}

#[task(name = "tests.named.dup")]
fn dup_b() -> u8 {
    2
}

fn clients() -> [Client; 2] {
    [
        Client::builder().workers(2).build().unwrap(),
        Client::builder()
            .workers(2)
            .encode_named_tasks(true)
            .build()
            .unwrap(),
    ]
}

#[test]
fn names_signatures_and_the_registry() {
    assert_eq!(ScoreTask::NAME, "named::score");
    assert_eq!(Add::NAME, "tests.named.add");
    assert!(
        ScoreTask::SIGNATURE.contains("Param"),
        "{}",
        ScoreTask::SIGNATURE
    );
    assert!(
        ScoreTask::SIGNATURE.contains("f64"),
        "{}",
        ScoreTask::SIGNATURE
    );
    assert_ne!(ScoreTask::fingerprint(), LoadTask::fingerprint());
    let names = registry().names();
    for name in [
        "named::load",
        "named::score",
        "tests.named.add",
        "named::constant",
    ] {
        assert!(
            registry().get(name).is_some(),
            "{name} is not registered: {names:?}"
        );
    }
    let r = registry().get("named::score").unwrap();
    assert_eq!(r.fingerprint(), ScoreTask::fingerprint());
    // The function itself stays callable.
    assert_eq!(add_numbers(1, &2), 3);
}

#[test]
fn a_name_registered_twice_resolves_to_neither() {
    assert!(registry().get("tests.named.dup").is_none());
    assert!(registry().duplicates().contains(&"tests.named.dup"));
    assert_eq!(dup_a() + dup_b(), 3);
}

#[test]
fn values_and_futures_as_arguments_direct_and_encoded() {
    for client in clients() {
        let data = client.submit_named(LoadTask, (2,));
        let param = Param {
            weight: 0.5,
            label: "ab".into(),
        };
        let by_value = client.submit_named(ScoreTask, (param.clone(), &data));
        let param_future = client.submit_local(move || param);
        let by_future = client.submit_named(ScoreTask, (&param_future, &data));
        let expected = score(
            Param {
                weight: 0.5,
                label: "ab".into(),
            },
            &load(2),
        );
        assert_eq!(by_value.wait(), Ok(&expected));
        assert_eq!(by_future.wait(), Ok(&expected));
        assert_eq!(client.submit_named(ConstantTask, ()).wait(), Ok(&7));
        assert_eq!(
            client.submit_named(Add, (40, &client.scatter(2))).wait(),
            Ok(&42)
        );
        assert_eq!(
            client
                .submit_named(DescribeTask, (String::from("x"),))
                .wait()
                .map(String::as_str),
            Ok("<x>")
        );
    }
}

#[test]
fn a_panicking_named_task_fails_its_dependents_by_name() {
    for client in clients() {
        let bad = client.submit_named(FailOnTask, (13,));
        let dependent =
            client.submit_named(Add, (1, &client.submit_local_with(&bad, |x| u64::from(*x))));
        match bad.wait() {
            Err(TaskError::Panicked { message, .. }) => assert_eq!(&*message, "unlucky 13"),
            other => panic!("expected a panic, got {other:?}"),
        }
        assert!(matches!(
            dependent.wait(),
            Err(TaskError::InputFailed { .. })
        ));
    }
}

/// A task this binary does not register: its name is unknown to the registry.
struct Unregistered;
impl NamedTask for Unregistered {
    const NAME: &'static str = "tests.named.nobody";
    const SIGNATURE: &'static str = "fn() -> u8";
    type Args = ();
    type Output = u8;
    fn call((): ()) -> u8 {
        0
    }
}

/// Claims the name of `score` with other types: a binary built from different code.
struct WrongSignature;
impl NamedTask for WrongSignature {
    const NAME: &'static str = "named::score";
    const SIGNATURE: &'static str = "fn(u8,) -> u8";
    type Args = (u8,);
    type Output = u8;
    fn call((x,): (&u8,)) -> u8 {
        *x
    }
}

/// Agrees with `describe` on name and signature but sends bytes that are no `String`.
struct GarbledArguments;
impl NamedTask for GarbledArguments {
    const NAME: &'static str = "named::describe";
    const SIGNATURE: &'static str = DescribeTask::SIGNATURE;
    type Args = (u8,);
    type Output = String;
    fn call((_,): (&u8,)) -> String {
        String::new()
    }
}

/// Agrees with `add` on name, signature and arguments but reads the result as a `bool`.
struct GarbledResult;
impl NamedTask for GarbledResult {
    const NAME: &'static str = "tests.named.add";
    const SIGNATURE: &'static str = Add::SIGNATURE;
    type Args = (u64, u64);
    type Output = bool;
    fn call(_: (&u64, &u64)) -> bool {
        false
    }
}

#[test]
fn registry_path_errors_name_the_task() {
    let client = Client::builder()
        .workers(2)
        .encode_named_tasks(true)
        .build()
        .unwrap();

    let f = client.submit_named(Unregistered, ());
    match f.wait() {
        Err(e @ TaskError::UnknownTask { .. }) => {
            assert!(e.to_string().contains("tests.named.nobody"), "{e}");
            assert!(e.to_string().contains(&f.id().to_string()), "{e}");
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }

    let f = client.submit_named(WrongSignature, (1u8,));
    match f.wait() {
        Err(e @ TaskError::SignatureMismatch { .. }) => {
            assert!(e.to_string().contains("named::score"), "{e}");
            assert!(e.to_string().contains("fn(u8,) -> u8"), "{e}");
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    }

    // 200 encodes as one byte with the continuation bit set: not a valid string length.
    let f = client.submit_named(GarbledArguments, (200u8,));
    match f.wait() {
        Err(e @ TaskError::BadArguments { .. }) => {
            assert!(e.to_string().contains("named::describe"), "{e}");
            assert!(e.to_string().contains("argument 0"), "{e}");
        }
        other => panic!("expected BadArguments, got {other:?}"),
    }

    // 300 encodes as the varint [0xAC, 0x02]: not a bool.
    let f = client.submit_named(GarbledResult, (100u64, 200u64));
    match f.wait() {
        Err(e @ TaskError::BadResult { .. }) => {
            assert!(e.to_string().contains("tests.named.add"), "{e}");
        }
        other => panic!("expected BadResult, got {other:?}"),
    }
}

#[test]
fn registration_call_checks_argument_count_and_bytes() {
    let r = registry().get("tests.named.add").unwrap();
    assert_eq!(
        r.call(&[&[1]]),
        Err(CallError::ArgCount {
            expected: 2,
            found: 1
        })
    );
    assert!(matches!(
        r.check(&[&[1], &[0xFF]]),
        Err(CallError::DecodeArg { index: 1, .. })
    ));
    let out = r.call(&[&[5], &[6]]).unwrap();
    assert_eq!(postcard::from_bytes::<u64>(&out).unwrap(), 11);
}

#[test]
fn a_graph_mixing_named_tasks_and_closures_matches_sequential() {
    let files = 6u32;
    let params: Vec<Param> = (0..20)
        .map(|i| Param {
            weight: f64::from(i) / 3.0,
            label: "p".repeat(i as usize % 4),
        })
        .collect();
    let mut expected = f64::MIN;
    for file in 0..files {
        let data = load(file);
        for p in &params {
            expected = expected.max(score(p.clone(), &data) * 2.0);
        }
    }
    for client in clients() {
        let mut scores: Vec<TaskFuture<f64>> = Vec::new();
        for file in 0..files {
            let data = client.submit_named(LoadTask, (file,));
            for p in &params {
                let s = client.submit_named(ScoreTask, (p.clone(), &data));
                scores.push(client.submit_local_with(&s, |x| x * 2.0));
            }
        }
        let best = client.submit_local_with(&scores, |xs| {
            xs.into_iter().copied().fold(f64::MIN, f64::max)
        });
        assert_eq!(best.wait(), Ok(&expected));
    }
}

fn param_strategy() -> impl Strategy<Value = Param> {
    (any::<f64>(), ".*").prop_map(|(weight, label)| Param { weight, label })
}

proptest! {
    #[test]
    fn arguments_round_trip(p in param_strategy(), data in proptest::collection::vec(any::<f64>(), 0..50), n in any::<u64>()) {
        let args = (p.clone(), data.clone(), n);
        let encoded = <(Param, Vec<f64>, u64) as Args>::encode(args.as_refs()).unwrap();
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let decoded = <(Param, Vec<f64>, u64) as Args>::decode(&slices).unwrap();
        // Compare bit patterns: NaN != NaN.
        prop_assert_eq!(decoded.0.weight.to_bits(), p.weight.to_bits());
        prop_assert_eq!(&decoded.0.label, &p.label);
        prop_assert_eq!(decoded.1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), data.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        prop_assert_eq!(decoded.2, n);
    }

    #[test]
    fn random_bytes_never_panic_a_decoder(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4)) {
        let slices: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        for r in registry().iter() {
            // Decoding only: some tasks here panic on purpose when run.
            let _ = r.check(&slices);
        }
        for bytes in &slices {
            let _ = postcard::from_bytes::<Vec<f64>>(bytes);
            let _ = postcard::from_bytes::<String>(bytes);
            let _ = postcard::from_bytes::<Param>(bytes);
        }
    }
}

#[test]
fn garbage_into_every_registered_shim_is_an_error_not_a_panic() {
    // Run (not just check) the shims of tasks that cannot panic on any decoded input.
    for name in [
        "named::load",
        "named::score",
        "tests.named.add",
        "named::describe",
    ] {
        let r = registry().get(name).unwrap();
        for bytes in [&[][..], &[0xFF; 9][..], &[0x80][..]] {
            let result = std::panic::catch_unwind(|| r.call(&[bytes, bytes]));
            assert!(result.is_ok(), "{name} panicked on {bytes:?}");
        }
    }
}

/// Counts how often it is encoded.
#[derive(Debug, Clone, PartialEq)]
struct Counted(u32);
static ENCODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ENCODED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.serialize(s)
    }
}
impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(Counted)
    }
}

#[task]
fn bump(c: &Counted) -> Counted {
    Counted(c.0 + 1)
}

#[test]
fn in_process_calls_encode_nothing_and_the_registry_path_encodes_both_ways() {
    use std::sync::atomic::Ordering::SeqCst;
    let direct = Client::builder().workers(2).build().unwrap();
    let before = ENCODED.load(SeqCst);
    let a = direct.submit_named(BumpTask, (Counted(1),));
    let b = direct.submit_named(BumpTask, (&a,));
    assert_eq!(b.wait(), Ok(&Counted(3)));
    assert_eq!(
        ENCODED.load(SeqCst),
        before,
        "the direct path encoded something"
    );

    let encoded = Client::builder()
        .workers(2)
        .encode_named_tasks(true)
        .build()
        .unwrap();
    let before = ENCODED.load(SeqCst);
    let c = encoded.submit_named(BumpTask, (Counted(1),));
    assert_eq!(c.wait(), Ok(&Counted(2)));
    // Once for the argument, once for the result.
    assert_eq!(ENCODED.load(SeqCst) - before, 2);
}

// ---- Functions as a Rust user writes them (issue 18, step 4) ----

#[task]
fn count(word: &str, lines: &[String]) -> usize {
    lines.iter().filter(|line| line.contains(word)).count()
}

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn swap(pair: (u32, u32)) -> (u32, u32) {
    (pair.1, pair.0)
}

#[task]
fn total(parts: &[u64]) -> u64 {
    parts.iter().sum()
}

#[task]
fn owned_total(parts: Vec<u64>) -> u64 {
    parts.into_iter().sum()
}

#[allow(clippy::too_many_arguments)]
#[task]
fn twelve(
    a: u8,
    b: &u16,
    c: u32,
    d: &str,
    e: u64,
    f: &[u8],
    g: i8,
    h: i16,
    i: &i32,
    j: i64,
    k: String,
    l: bool,
) -> String {
    format!("{a} {b} {c} {d} {e} {f:?} {g} {h} {i} {j} {k} {l}")
}

#[test]
fn borrowed_str_and_slice_parameters_take_owned_values_or_futures() {
    assert!(
        CountTask::SIGNATURE.contains("&str"),
        "{}",
        CountTask::SIGNATURE
    );
    let lines: Vec<String> = ["a cat", "a dog", "cat and dog"].map(String::from).to_vec();
    for client in clients() {
        let by_value = client.submit_named(CountTask, (String::from("cat"), lines.clone()));
        let word = client.scatter(String::from("dog"));
        let text = client.submit_local({
            let lines = lines.clone();
            move || lines
        });
        let by_future = client.submit_named(CountTask, (&word, &text));
        assert_eq!(by_value.wait(), Ok(&2));
        assert_eq!(by_future.wait(), Ok(&2));
    }
    // The function itself is called with the borrowed forms.
    assert_eq!(count("a", &lines), 3);
}

#[test]
fn one_argument_needs_no_tuple() {
    for client in clients() {
        let three = client.submit_named(SquareTask, 3u64);
        assert_eq!(three.wait(), Ok(&9));
        assert_eq!(client.submit_named(SquareTask, &three).wait(), Ok(&81));
        assert_eq!(client.submit_named(SquareTask, (4u64,)).wait(), Ok(&16));
        assert_eq!(client.submit_named(SquareTask, (&three,)).wait(), Ok(&81));
        assert_eq!(
            client.submit_named(LoadTask, 1).wait().map(Vec::len),
            Ok(100)
        );
    }
}

#[test]
fn a_tuple_parameter_takes_the_tuple_alone_or_wrapped() {
    for client in clients() {
        // Alone, the tuple is the one argument; wrapped in a 1-tuple, it is too.
        assert_eq!(
            client.submit_named(SwapTask, (1u32, 2u32)).wait(),
            Ok(&(2, 1))
        );
        assert_eq!(
            client.submit_named(SwapTask, ((3u32, 4u32),)).wait(),
            Ok(&(4, 3))
        );
        let pair = client.scatter((5u32, 6u32));
        assert_eq!(client.submit_named(SwapTask, &pair).wait(), Ok(&(6, 5)));
    }
}

#[test]
fn twelve_parameters_mixing_values_and_futures() {
    let expected = twelve(
        1,
        &2,
        3,
        "four",
        5,
        &[6, 6],
        -7,
        -8,
        &-9,
        -10,
        "eleven".into(),
        true,
    );
    for client in clients() {
        let four = client.scatter(String::from("four"));
        let six = client.submit_local(|| vec![6u8, 6]);
        let f = client.submit_named(
            TwelveTask,
            (
                1u8,
                2u16,
                3u32,
                &four,
                5u64,
                &six,
                -7i8,
                -8i16,
                -9i32,
                -10i64,
                String::from("eleven"),
                true,
            ),
        );
        assert_eq!(f.wait(), Ok(&expected));
        let values = client.submit_named(
            TwelveTask,
            (
                1u8,
                2u16,
                3u32,
                String::from("four"),
                5u64,
                vec![6u8, 6],
                -7i8,
                -8i16,
                -9i32,
                -10i64,
                String::from("eleven"),
                true,
            ),
        );
        assert_eq!(values.wait(), Ok(&expected));
    }
}

#[test]
fn a_slice_of_futures_is_one_argument() {
    for client in clients() {
        let parts: Vec<TaskFuture<u64>> = (1..=4u64)
            .map(|x| client.submit_local(move || x * 10))
            .collect();
        assert_eq!(client.submit_named(TotalTask, &parts[..]).wait(), Ok(&100));
        assert_eq!(client.submit_named(TotalTask, &parts).wait(), Ok(&100));
        assert_eq!(
            client
                .submit_named(TotalTask, &parts.iter().collect::<Vec<_>>())
                .wait(),
            Ok(&100)
        );
        assert_eq!(client.submit_named(OwnedTotalTask, &parts).wait(), Ok(&100));
        assert_eq!(
            client.submit_named(TotalTask, (&parts[..2],)).wait(),
            Ok(&30)
        );
        let none: Vec<TaskFuture<u64>> = Vec::new();
        assert_eq!(client.submit_named(TotalTask, &none).wait(), Ok(&0));
        // A plain Vec is still a value, even one whose type is inferred.
        assert_eq!(client.submit_named(TotalTask, vec![1u64, 2]).wait(), Ok(&3));
        assert_eq!(client.submit_named(TotalTask, Vec::new()).wait(), Ok(&0));
    }
}

#[test]
fn a_failed_element_fails_the_fan_in() {
    for client in clients() {
        let bad = client.submit_local(|| -> u64 { panic!("no part") });
        let parts = vec![client.scatter(1u64), bad];
        match client.submit_named(TotalTask, &parts).wait() {
            Err(TaskError::InputFailed { .. }) => {}
            other => panic!("expected InputFailed, got {other:?}"),
        }
    }
}

#[test]
fn a_fan_in_goes_to_another_peer_as_one_encoded_vec() {
    use peer_core::ext::ArgSlot;
    use peer_core::named::IntoArgs;
    let client = Client::builder().workers(2).build().unwrap();
    let parts: Vec<TaskFuture<u64>> = (1..=3u64).map(|x| client.scatter(x)).collect();
    let mut slots = IntoArgs::<(Vec<u64>,), _>::into_slots(&parts[..]).unwrap();
    let Some(ArgSlot::Future(future)) = slots.pop() else {
        panic!("expected one future slot")
    };
    let bytes = futures_util::FutureExt::now_or_never(future.encoded)
        .expect("all parts are done")
        .unwrap();
    assert_eq!(
        postcard::from_bytes::<Vec<u64>>(&bytes).unwrap(),
        vec![1, 2, 3]
    );
}

#[test]
fn map_named_on_the_local_client() {
    for client in clients() {
        let squares = client.map_named(SquareTask, 1..=4u64);
        assert_eq!(client.gather(squares), Ok(vec![1, 4, 9, 16]));
        let data = client.submit_named(LoadTask, 0);
        let scores = client.map_named(
            ScoreTask,
            [0.5, 1.0].map(|weight| {
                (
                    Param {
                        weight,
                        label: String::new(),
                    },
                    &data,
                )
            }),
        );
        assert_eq!(scores.len(), 2);
        assert_eq!(*scores[1].wait().unwrap(), 2.0 * scores[0].wait().unwrap());
    }
}

static FLAKY_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Panics on its first two calls in this process.
#[task]
fn flaky(x: &u32) -> u32 {
    if FLAKY_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
        panic!("not yet");
    }
    x + 1
}

#[test]
fn a_named_task_retries_on_every_path() {
    use std::sync::atomic::Ordering::SeqCst;
    for client in clients() {
        for by_future in [false, true] {
            FLAKY_CALLS.store(0, SeqCst);
            let f = if by_future {
                client
                    .task()
                    .retries(2)
                    .submit_named(FlakyTask, &client.scatter(1))
            } else {
                client.task().retries(2).submit_named(FlakyTask, 1)
            };
            assert_eq!(f.wait(), Ok(&2));
            FLAKY_CALLS.store(0, SeqCst);
            let f = client.task().retries(1).submit_named(FlakyTask, 1);
            assert!(matches!(f.wait(), Err(TaskError::Panicked { .. })));
        }
    }
}
