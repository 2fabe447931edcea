use std::sync::atomic::AtomicU64;

struct Counter {
    total: AtomicU64,
}

#[rpc_core::handler]
impl Counter {
    pub fn add(&mut self, n: u64) -> u64 {
        n
    }
}

fn main() {}
