use peer_core::Client;
#[test]
fn smoke() {
    let c = Client::builder().workers(2).build().unwrap();
    let a = c.submit(|| 2u64);
    let b = c.submit_with(&a, |x| x * 10);
    assert_eq!(*b.wait().unwrap(), 20);
}
