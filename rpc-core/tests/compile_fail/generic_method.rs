struct Echo;

#[rpc_core::handler]
impl Echo {
    pub fn echo<T: ToString>(value: T) -> String {
        value.to_string()
    }
}

fn main() {}
