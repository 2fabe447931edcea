struct Quiet;

#[rpc_core::handler]
impl Quiet {
    fn helper() -> u8 {
        1
    }
}

fn main() {}
