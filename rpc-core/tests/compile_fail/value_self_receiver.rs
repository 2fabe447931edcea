struct Counter;

#[rpc_core::handler]
impl Counter {
    pub fn consume(self, n: u64) -> u64 {
        n
    }
}

fn main() {}
