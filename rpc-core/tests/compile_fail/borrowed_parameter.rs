struct Greeter;

#[rpc_core::handler]
impl Greeter {
    pub fn hello(name: &str) -> String {
        format!("hello {name}")
    }
}

fn main() {}
