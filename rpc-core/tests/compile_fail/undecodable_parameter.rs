struct Point {
    x: i32,
}

struct Geometry;

#[rpc_core::handler]
impl Geometry {
    pub fn norm(point: Point) -> i32 {
        point.x.abs()
    }
}

fn main() {}
