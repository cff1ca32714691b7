struct Connection;

#[peer_core::task]
fn query(sql: &str, db: &Connection) -> usize {
    let _ = db;
    sql.len()
}

fn main() {}
