struct Shape;

#[rpc_core::handler]
impl Default for Shape {
    fn default() -> Self {
        Shape
    }
}

fn main() {}
